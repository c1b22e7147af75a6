package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // LABTRAIL_DIGEST_TZ names a zone even where the system has no zoneinfo

	"github.com/robfig/cron/v3"

	"github.com/labtrail/labtrail/internal/digest"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// listFlag is a flag given once per value (--project a --project b), or
// with comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error { *l = append(*l, splitList(v)...); return nil }

// destinations are the digest's destinations c configures, by name.
func (c config) destinations() map[string]digest.Destination {
	d := map[string]digest.Destination{}
	if c.Digest.SlackURL != "" {
		d["slack"] = digest.Slack(c.Digest.SlackURL)
	}
	if c.Digest.WebhookURL != "" {
		d["webhook"] = digest.Webhook(c.Digest.WebhookURL)
	}
	return d
}

// digestOptions are the options of a digest of period over the projects
// and group given, as c configures digests.
func (c config) digestOptions(p digest.Period, projects []string, group string) digest.Options {
	return digest.Options{Period: p, Location: c.Digest.Location, Projects: projects, Group: group, PublicURL: pagesURL(c)}
}

// makeDigest resolves o's selection and builds its digest as of now.
func makeDigest(ctx context.Context, st store.Store, mc metrics.Config, o digest.Options, now time.Time) (*digest.Digest, error) {
	if err := digest.Select(ctx, st, &o); err != nil {
		return nil, err
	}
	o.Now = now
	return digest.Build(ctx, metrics.New(st, mc), st, o)
}

func runDigest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("digest", "digest --period day|week [--project P]... [--group G] [--to slack|webhook|stdout] [--dry-run] [--at TIME]", stderr)
	build := useSettings(fs, []*setting{dbSetting, logLevelSetting}, digestSettings, digestCommandSettings)
	var projects, to listFlag
	var period, group, at string
	var dry bool
	fs.StringVar(&period, "period", "", "day or week: the last complete one, against the one before (required)")
	fs.Var(&projects, "project", "a project (path or id) the digest covers; repeat for more (default: every project)")
	fs.StringVar(&group, "group", "", "a group whose projects (subgroups included) the digest covers")
	fs.Var(&to, "to", "slack, webhook or stdout; repeat for more (default: each destination configured, else stdout)")
	fs.BoolVar(&dry, "dry-run", false, "print what would be sent to each destination instead of sending it, and record nothing")
	fs.StringVar(&at, "at", "", "make the digest as at this time, RFC 3339 or a date (the last period complete then); default now")
	if err := parse(fs, args); err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, format+"\n", a...)
		return errUsage
	}
	p, err := digest.ParsePeriod(period)
	if err != nil {
		return usageErr("--period: %v", err)
	}
	now := time.Now()
	if at != "" {
		if now, err = time.Parse(time.RFC3339, at); err != nil {
			if now, err = time.Parse(time.DateOnly, at); err != nil {
				return usageErr("--at must be a time such as 2026-03-16T09:00:00Z or a date such as 2026-03-16, got %q", at)
			}
		}
	}
	c, err := build()
	if err != nil {
		return err
	}
	configured := c.destinations()
	if len(to) == 0 {
		for _, name := range []string{"slack", "webhook"} {
			if _, ok := configured[name]; ok {
				to = append(to, name)
			}
		}
		if len(to) == 0 {
			to = listFlag{"stdout"}
		}
	}
	var dests []digest.Destination
	toStdout := false
	for _, name := range slices.Compact(slices.Sorted(slices.Values(to))) {
		switch name {
		case "stdout":
			toStdout = true
		case "slack", "webhook":
			d, ok := configured[name]
			if !ok {
				env := map[string]string{"slack": "LABTRAIL_SLACK_WEBHOOK_URL", "webhook": "LABTRAIL_DIGEST_WEBHOOK_URL"}[name]
				return usageErr("--to %s: %s is not set", name, env)
			}
			dests = append(dests, d)
		default:
			return usageErr("--to must be slack, webhook or stdout, got %q", name)
		}
	}

	// A digest of a database made just now would be all zeros.
	if _, err := os.Stat(c.DB); !isPostgres(c.DB) && errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no database at %s: set LABTRAIL_DB (or --db) to labtrail's, or sync first", c.DB)
	}
	st, err := openStore(ctx, c.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := makeDigest(ctx, st, c.Metrics, c.digestOptions(p, projects, group), now)
	if err != nil {
		return err
	}
	if toStdout {
		if dry && len(dests) > 0 {
			fmt.Fprintln(stdout, "# stdout")
		}
		fmt.Fprint(stdout, d.Text())
	}
	if dry {
		for _, dst := range dests {
			body, err := dst.Body(d)
			if err != nil {
				return err
			}
			if toStdout || len(dests) > 1 {
				fmt.Fprintf(stdout, "# %s: POST %s\n", dst.Name, digest.Mask(dst.URL))
			}
			fmt.Fprintln(stdout, indent(body))
		}
		return nil
	}
	// Retries and failures are logged; what came of each destination is
	// said below.
	sender := &digest.Sender{Store: st, Log: newLogger(stderr, max(c.LogLevel, slog.LevelWarn))}
	var failed []string
	for _, r := range sender.Send(ctx, d, dests...) {
		switch {
		case r.Err != nil:
			failed = append(failed, r.Destination+": "+r.Err.Error())
		case r.Skipped && !r.Record.SentAt.IsZero():
			fmt.Fprintf(stderr, "%s: digest %s was sent at %s; not sent again\n", r.Destination, d.Key, r.Record.SentAt.Format(time.RFC3339))
		case r.Skipped:
			fmt.Fprintf(stderr, "%s: digest %s is being sent by another labtrail since %s; not sent\n", r.Destination, d.Key, r.Record.ClaimedAt.Format(time.RFC3339))
		default:
			fmt.Fprintf(stderr, "%s: digest %s sent\n", r.Destination, d.Key)
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// indent pretty-prints a JSON body for a reader, its keys in their order.
func indent(body []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, body, "", "  ") != nil {
		return string(body)
	}
	return b.String()
}

// zoned is a cron schedule read in a time zone (a CRON_TZ= prefix in the
// expression wins).
type zoned struct {
	cron.Schedule
	loc *time.Location
}

func (z zoned) Next(t time.Time) time.Time { return z.Schedule.Next(t.In(z.loc)) }

// scheduledDigest is serve's scheduled digest, or nil without
// LABTRAIL_DIGEST_SCHEDULE.
func (c config) scheduledDigest(st store.Store, log *slog.Logger) (*jobs.Digest, error) {
	if c.Digest.Schedule == nil {
		return nil, nil
	}
	var dests []digest.Destination
	for _, name := range []string{"slack", "webhook"} {
		if d, ok := c.destinations()[name]; ok {
			dests = append(dests, d)
		}
	}
	if len(dests) == 0 {
		return nil, errors.New("LABTRAIL_DIGEST_SCHEDULE is set, but neither LABTRAIL_SLACK_WEBHOOK_URL nor LABTRAIL_DIGEST_WEBHOOK_URL says where to send the digest")
	}
	loc := c.Digest.Location
	o := c.digestOptions(c.Digest.Period, c.Digest.Projects, c.Digest.Group)
	sender := &digest.Sender{Store: st, Log: log}
	log.Info("scheduled digest", "schedule", c.Digest.Spec, "zone", loc.String(), "period", c.Digest.Period,
		"next", zoned{c.Digest.Schedule, loc}.Next(time.Now()).Format(time.RFC3339))
	return &jobs.Digest{
		Schedule: zoned{c.Digest.Schedule, loc},
		PeriodEnd: func(t time.Time) time.Time {
			_, until := c.Digest.Period.Window(t, loc)
			return until
		},
		Send: func(ctx context.Context, until time.Time) error {
			// As at the period's end: every retry makes the same digest.
			d, err := makeDigest(ctx, st, c.Metrics, o, until.In(loc))
			if err != nil {
				return err
			}
			var failed []error
			for _, r := range sender.Send(ctx, d, dests...) {
				if r.Err != nil {
					failed = append(failed, fmt.Errorf("%s: %w", r.Destination, r.Err))
				}
			}
			return errors.Join(failed...)
		},
	}, nil
}

// pagesURL is where a digest's links point: labtrail's address as
// browsers reach it (publicURL), or none when it cannot be known.
func pagesURL(c config) string {
	u, _ := publicURL(&c)
	return u
}
