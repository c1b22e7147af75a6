package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/ingest"
)

const hooksSynopsis = "hooks install|status|test [flags]"

// runHooks manages the GitLab project webhooks that feed labtrail, on the
// projects the poller follows.
func runHooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "install":
		return runHooksInstall(ctx, args, stdout, stderr)
	case "status":
		return runHooksStatus(ctx, args, stdout, stderr)
	case "test":
		return runHooksTest(ctx, args, stdout, stderr)
	case "-h", "-help", "--help", "help":
		hooksUsage(stdout)
		return nil
	case "":
		hooksUsage(stderr)
		return errUsage
	}
	fmt.Fprintf(stderr, "labtrail hooks: unknown subcommand %q\n\n", sub)
	hooksUsage(stderr)
	return errUsage
}

func hooksUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: labtrail "+hooksSynopsis)
	fmt.Fprintln(w, "\nManage the GitLab webhooks that send events to labtrail, on the projects it follows")
	fmt.Fprintln(w, "(REPOS, LABTRAIL_GROUPS, or every project the token's user is a member of):")
	fmt.Fprintln(w, "  install  add or update labtrail's webhook (needs GITLAB_TOKEN with the api scope, Maintainer role, LABTRAIL_WEBHOOK_SECRET)")
	fmt.Fprintln(w, "  status   list each project's webhooks")
	fmt.Fprintln(w, "  test     ask GitLab to send a test push event to labtrail's webhook")
	fmt.Fprintln(w, "\nlabtrail hooks <subcommand> --help shows its flags.")
}

// hooksSetup parses a hooks subcommand's flags and resolves its projects.
type hooksSetup struct {
	cfg      config
	gl       *gitlab.Client
	url      string
	projects gitlab.ProjectList
}

func parseHooks(ctx context.Context, name, synopsis string, needURL bool, args []string, stderr io.Writer) (*hooksSetup, error) {
	fs := newFlagSet("hooks "+name, synopsis, stderr)
	used := []*setting{renamed(webhookURLSetting, "url"), logLevelSetting}
	if name == "install" {
		used = append(used, webhookSecretSetting)
	}
	conn := fs.String("connection", "", "an added GitLab connection (labtrail connections list): its URL, token, selection and webhook secret instead of the environment's")
	build := useSettings(fs, gitlabSettings, selectionSettings, used, []*setting{dbSetting}, secretKeySettings)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	c, err := build()
	if err != nil {
		return nil, err
	}
	if err := c.useConnection(ctx, *conn); err != nil {
		return nil, err
	}
	s := &hooksSetup{cfg: c, url: c.WebhookURL}
	if needURL && s.url == "" {
		fmt.Fprintln(stderr, "--url is required: labtrail's webhook endpoint, e.g. https://labtrail.example.com/api/v1/webhooks/gitlab")
		fs.Usage()
		return nil, errUsage
	}
	if err := c.requireToken(); err != nil {
		return nil, err
	}
	if name == "install" && len(c.WebhookSecrets) == 0 {
		return nil, errors.New("LABTRAIL_WEBHOOK_SECRET not set: export the secret labtrail serve checks, so that the hooks send it as their token")
	}
	if s.gl, err = newClient(c, newLogger(stderr, c.LogLevel), nil); err != nil {
		return nil, err
	}
	sel := c.poller(s.gl, nil, nil).Selection
	if s.projects, err = s.gl.SelectProjects(ctx, sel); err != nil {
		return nil, err
	}
	for _, m := range s.projects.Missing {
		fmt.Fprintf(stderr, "skipping %s: %v\n", m.Selector, m.Err)
	}
	if s.projects.Capped > 0 {
		fmt.Fprintf(stderr, "%d more projects left out by LABTRAIL_MAX_PROJECTS=%d\n", s.projects.Capped, c.MaxProjects)
	}
	return s, nil
}

func runHooksInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseHooks(ctx, "install", "hooks install --url URL [flags]", true, args, stderr)
	if err != nil {
		return err
	}
	// The first secret is the current one; others are kept during a
	// rotation only so old hooks keep working.
	secret := s.cfg.WebhookSecrets[0]
	var created, updated, failed int
	for _, p := range s.projects.Projects {
		h, isNew, err := s.gl.EnsureProjectHook(ctx, p, s.url, secret)
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(stdout, "%s: failed: %v\n", p.Path, err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		case isNew:
			created++
			fmt.Fprintf(stdout, "%s: created hook %d\n", p.Path, h.ID)
		default:
			updated++
			fmt.Fprintf(stdout, "%s: updated hook %d\n", p.Path, h.ID)
		}
	}
	fmt.Fprintf(stdout, "%d created, %d updated, %d failed, of %d projects\n", created, updated, failed, len(s.projects.Projects))
	if failed > 0 {
		return fmt.Errorf("%d of %d projects have no labtrail webhook", failed, len(s.projects.Projects))
	}
	return nil
}

func runHooksStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseHooks(ctx, "status", "hooks status [--url URL] [flags]", false, args, stderr)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tHOOK\tURL\tLABTRAIL\tEVENTS")
	var failed int
	for _, p := range s.projects.Projects {
		hooks, err := s.gl.ProjectHooks(ctx, p)
		if err != nil {
			failed++
			fmt.Fprintf(tw, "%s\t-\t-\t-\terror: %v\n", p.Path, err)
			continue
		}
		if len(hooks) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\tno\t(no webhooks)\n", p.Path)
		}
		for _, h := range hooks {
			ours := "no"
			if s.url != "" && h.URL == s.url {
				ours = "yes"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Path, h.ID, h.URL, ours, strings.Join(h.Events, ","))
		}
	}
	tw.Flush()
	if failed > 0 {
		return fmt.Errorf("could not list the webhooks of %d of %d projects", failed, len(s.projects.Projects))
	}
	return nil
}

func runHooksTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseHooks(ctx, "test", "hooks test --url URL [flags]", true, args, stderr)
	if err != nil {
		return err
	}
	var ok, failed int
	for _, r := range ingest.TestHooks(ctx, s.gl, s.projects.Projects, s.url) {
		switch {
		case r.OK:
			ok++
			fmt.Fprintf(stdout, "%s: hook %d OK\n", r.Project, r.HookID)
		case r.HookID != 0:
			failed++
			fmt.Fprintf(stdout, "%s: hook %d failed: %s\n", r.Project, r.HookID, r.Error)
		default:
			failed++
			fmt.Fprintf(stdout, "%s: failed: %s\n", r.Project, r.Error)
		}
	}
	fmt.Fprintf(stdout, "%d OK, %d failed\n", ok, failed)
	if failed > 0 {
		return fmt.Errorf("%d webhook tests failed", failed)
	}
	return nil
}
