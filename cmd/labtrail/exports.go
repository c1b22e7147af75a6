package main

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/store"
)

// exportConfig is the settings of issue 16: the S3 export and retention.
type exportConfig struct {
	S3URL       *export.Location // nil: no S3 export
	S3          export.S3Config
	Retention   export.Retention
	BodiesKeep  time.Duration // webhook delivery bodies; 0: forever
	ArchiveEach time.Duration // how often the export and retention jobs run
}

var (
	s3Settings = []*setting{
		{flag: "export-s3-endpoint", env: "LABTRAIL_EXPORT_S3_ENDPOINT", typ: "url",
			help: "S3-compatible endpoint (MinIO, Ceph, ...); empty: AWS",
			set:  text(func(c *config) *string { return &c.Export.S3.Endpoint })},
		{flag: "export-s3-region", env: "LABTRAIL_EXPORT_S3_REGION", typ: "string",
			help: "the bucket's region; empty: the AWS SDK's default chain (AWS_REGION), else us-east-1",
			set:  text(func(c *config) *string { return &c.Export.S3.Region })},
		{flag: "export-s3-path-style", env: "LABTRAIL_EXPORT_S3_PATH_STYLE", def: "false", typ: "bool",
			help: "address the bucket in the path (MinIO and most S3-compatible stores) rather than the host name",
			set:  boolean(func(c *config) *bool { return &c.Export.S3.PathStyle })},
	}
	// archiveSettings are serve's: the S3 export and retention jobs.
	archiveSettings = append([]*setting{
		{flag: "export-s3-url", env: "LABTRAIL_EXPORT_S3_URL", typ: "url",
			help: "s3://bucket/prefix: export each closed UTC day there, one object per kind (docs/exports.md)",
			set: func(c *config, v string) error {
				if strings.TrimSpace(v) == "" {
					return nil
				}
				loc, err := export.ParseS3URL(v)
				if err != nil {
					return errors.New("must be an s3://bucket/prefix URL")
				}
				c.Export.S3URL = &loc
				return nil
			}},
		{flag: "retention", env: "LABTRAIL_RETENTION", typ: "list",
			help: "how long events are kept, for every kind and per kind, e.g. 720h,job=168h; empty: forever",
			set: func(c *config, v string) (err error) {
				c.Export.Retention, err = export.ParseRetention(v)
				return err
			}},
		{flag: "retention-delivery-bodies", env: "LABTRAIL_RETENTION_DELIVERY_BODIES", typ: "duration",
			help: "how long webhook deliveries keep their bodies once converted (the rows stay); empty: forever",
			set:  duration(func(c *config) *time.Duration { return &c.Export.BodiesKeep })},
		{flag: "archive-interval", env: "LABTRAIL_ARCHIVE_INTERVAL", def: "1h", typ: "duration",
			help: "how often the S3 export and retention run (once across replicas)",
			set:  duration(func(c *config) *time.Duration { return &c.Export.ArchiveEach })},
	}, s3Settings...)
)

// archiveTasks are serve's periodic jobs of the S3 export and retention,
// for the job queue.
func archiveTasks(ctx context.Context, c config, st store.Store, log *slog.Logger) ([]jobs.Task, error) {
	var tasks []jobs.Task
	if c.Export.ArchiveEach <= 0 {
		c.Export.ArchiveEach = time.Hour
	}
	if c.Export.S3URL != nil {
		client, err := export.NewS3Client(ctx, c.Export.S3)
		if err != nil {
			return nil, err
		}
		a := &export.Archiver{Store: st, S3: client, Loc: *c.Export.S3URL, Log: log}
		tasks = append(tasks, jobs.Task{Name: "export_s3", Interval: c.Export.ArchiveEach, Run: func(ctx context.Context) error {
			res, err := a.Run(ctx)
			if err != nil {
				log.Error("S3 export failed", "location", a.Loc.String(), "err", err)
				return err
			}
			if res.Objects > 0 {
				log.Info("S3 export", "objects", res.Objects, "rewritten", res.Rewritten, "events", res.Events, "days", res.Manifests)
			}
			return nil
		}})
	}
	if !c.Export.Retention.Zero() || c.Export.BodiesKeep > 0 {
		exported := c.Export.S3URL != nil
		tasks = append(tasks, jobs.Task{Name: "retention", Interval: c.Export.ArchiveEach, Run: func(ctx context.Context) error {
			res, err := export.Prune(ctx, st, c.Export.Retention, c.Export.BodiesKeep, exported, time.Now())
			attrs := []any{"delivery_bodies", res.DeliveryBodies}
			for k, n := range res.Events {
				if n > 0 {
					attrs = append(attrs, string(k), n)
				}
			}
			if err != nil {
				log.Error("retention failed", append(attrs, "err", err)...)
				return err
			}
			log.Info("retention", attrs...)
			return nil
		}})
	}
	return tasks, nil
}

func parseKinds(vs []string) ([]change.Kind, error) {
	var out []change.Kind
	for _, v := range vs {
		k, err := change.ParseKind(v)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// parseWhen reads an RFC 3339 time or a date (midnight UTC).
func parseWhen(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			if !store.InTimeRange(t) {
				return time.Time{}, fmt.Errorf("--%s %s is outside %s", flagName, v, store.TimeRange())
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("--%s must be a time such as 2026-05-01T00:00:00Z or a date such as 2026-05-01, got %q", flagName, v)
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "export [--format ndjson|csv] [--kind K]... [--project P]... [--since T] [--until T] [--out FILE|-]", stderr)
	build := useSettings(fs, []*setting{dbSetting})
	format := fs.String("format", "ndjson", "ndjson (one event per line, as the API's GET /api/v1/events/{id}) or csv")
	var kinds, projects listFlag
	fs.Var(&kinds, "kind", "only events of this kind (repeat or comma-separate for several)")
	fs.Var(&projects, "project", "only events of this project, an id or a path (repeat for several)")
	since := fs.String("since", "", "only events that occurred at or after this time or date")
	until := fs.String("until", "", "only events that occurred before this time or date")
	out := fs.String("out", "-", "the file to write; - for standard output")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	fmtv, err := export.ParseFormat(*format)
	if err != nil {
		return err
	}
	var f store.Filter
	if f.Kinds, err = parseKinds(kinds); err != nil {
		return err
	}
	if f.Since, err = parseWhen("since", *since); err != nil {
		return err
	}
	if f.Until, err = parseWhen("until", *until); err != nil {
		return err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return errors.New("--until must be after --since")
	}
	if err := existingDB(c.DB); err != nil {
		return err
	}
	st, err := openStore(ctx, c.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	if f.ProjectIDs, err = resolveProjects(ctx, st, projects); err != nil {
		return err
	}
	w, finish, err := createOut(*out, stdout)
	if err != nil {
		return err
	}
	start := time.Now()
	var last time.Time
	n, err := export.Write(ctx, w, st, fmtv, f, func(n int64) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "\rexported %d events (%.0f/s)", n, float64(n)/time.Since(start).Seconds())
		}
	})
	if ferr := finish(err == nil); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintln(stderr)
		return err
	}
	fmt.Fprintf(stderr, "\rexported %d events in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// existingDB refuses a SQLite path that does not exist: opening it would
// create an empty database and export nothing, "successfully".
func existingDB(db string) error {
	if isPostgres(db) || isDynamoDB(db) {
		return nil
	}
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("database %s: %w", db, err)
	}
	return nil
}

// resolveProjects turns project ids or paths (any case) into the ids of
// stored projects.
func resolveProjects(ctx context.Context, st store.Store, refs []string) ([]int64, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ps, err := st.Projects(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := store.SelectProjects(ps, refs, nil)
	if ue := (*store.UnknownSelectionError)(nil); errors.As(err, &ue) {
		return nil, fmt.Errorf("--project %q: not a project labtrail syncs", ue.Ref)
	}
	return ids, err
}

// createOut opens the export's destination; finish closes it, and removes
// a file whose export failed, so a partial export is never taken for one.
func createOut(name string, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if name == "-" || name == "" {
		return stdout, func(bool) error { return nil }, nil
	}
	f, err := os.CreateTemp(dirOf(name), ".labtrail-export-*")
	if err != nil {
		return nil, nil, err
	}
	return f, func(ok bool) error {
		err := f.Close()
		if ok && err == nil {
			err = os.Rename(f.Name(), name)
		}
		if !ok || err != nil {
			os.Remove(f.Name())
		}
		return err
	}, nil
}

func dirOf(name string) string {
	if i := strings.LastIndexByte(name, os.PathSeparator); i >= 0 {
		return name[:i+1]
	}
	return "."
}

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", "import [--from DATE] [--to DATE] [--kind K]... FILE|-|s3://bucket/prefix", stderr)
	build := useSettings(fs, []*setting{dbSetting}, s3Settings)
	from := fs.String("from", "", "s3:// only: the first day to import (YYYY-MM-DD)")
	to := fs.String("to", "", "s3:// only: the last day to import (YYYY-MM-DD)")
	var kinds listFlag
	fs.Var(&kinds, "kind", "s3:// only: only objects of this kind (repeat for several)")
	// One argument, before, between or after the flags.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return parse(fs, args)
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "import takes one file, - (standard input) or s3://bucket/prefix")
		fs.Usage()
		return errUsage
	}
	c, err := build()
	if err != nil {
		return err
	}
	src := rest[0]
	var r export.DayRange
	if r.Kinds, err = parseKinds(kinds); err != nil {
		return err
	}
	if r.From, err = parseWhen("from", *from); err != nil {
		return err
	}
	if r.To, err = parseWhen("to", *to); err != nil {
		return err
	}
	isS3 := strings.HasPrefix(src, "s3://")
	if !isS3 && (*from != "" || *to != "" || len(kinds) > 0) {
		return errors.New("--from, --to and --kind select days of an s3:// export; a file is imported whole")
	}
	var in io.Reader
	if !isS3 {
		rc, err := openImport(src, os.Stdin)
		if err != nil {
			return err
		}
		defer rc.Close()
		in = rc
	}
	// The schema as this labtrail knows it (SQLite migrates on open).
	st, err := openStore(ctx, c.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	var last time.Time
	report := func(where string, res export.ImportResult) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "\r%s: read %d events, stored %d", where, res.Lines, res.Events)
		}
	}
	var res export.ImportResult
	if isS3 {
		loc, err := export.ParseS3URL(src)
		if err != nil {
			return err
		}
		client, err := export.NewS3Client(ctx, c.Export.S3)
		if err != nil {
			return err
		}
		res, err = export.ImportS3(ctx, client, loc, r, st, report)
		if err != nil {
			fmt.Fprintln(stderr)
			return err
		}
	} else {
		res, err = export.Read(ctx, in, st, func(res export.ImportResult) { report(src, res) })
		if err != nil {
			fmt.Fprintln(stderr)
			return err
		}
	}
	fmt.Fprintf(stderr, "\r")
	fmt.Fprintf(stdout, "imported %s: %d events read, %d stored (the others were stored already, or newer), %d timeline entries added, in %s\n",
		src, res.Lines, res.Events, res.Timeline, time.Since(start).Round(time.Millisecond))
	return nil
}

// openImport opens an NDJSON export, gunzipping a .gz one.
func openImport(name string, stdin io.Reader) (io.ReadCloser, error) {
	var (
		f   io.ReadCloser = io.NopCloser(stdin)
		err error
	)
	if name != "-" {
		if f, err = os.Open(name); err != nil {
			return nil, err
		}
	}
	if !strings.HasSuffix(name, ".gz") {
		return f, nil
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{gz, f}, nil
}
