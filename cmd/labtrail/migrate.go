package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/store"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "migrate [--db DB] | migrate --from DB --to DB", stderr)
	build := useSettings(fs, []*setting{dbSetting, dynamoRetentionSetting})
	from := fs.String("from", "", "copy this database's history (SQLite file or postgres:// URL) ...")
	to := fs.String("to", "", "... into this one, migrating it first; then compare counts and checksums")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	if (*from == "") != (*to == "") {
		fmt.Fprintln(stderr, "--from and --to go together")
		fs.Usage()
		return errUsage
	}
	if *from == "" {
		return migrate(ctx, c.DB, stdout)
	}
	return copyDB(ctx, *from, *to, c.Export.Retention, stdout, stderr)
}

// migrate applies the store's and the job queue's migrations and lists
// them.
func migrate(ctx context.Context, db string, stdout io.Writer) error {
	if isDynamoDB(db) {
		return createDynamo(ctx, db, stdout)
	}
	applied, err := migrateDB(ctx, db)
	printApplied(stdout, db, applied)
	if err != nil {
		return err
	}
	return nil
}

func printApplied(w io.Writer, db string, applied []store.Migration) {
	if len(applied) == 0 {
		fmt.Fprintf(w, "%s: schema up to date, nothing to apply\n", displayDB(db))
		return
	}
	fmt.Fprintf(w, "%s: applied %d migrations\n", displayDB(db), len(applied))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range applied {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", m.Part, m.Version, m.Name)
	}
	tw.Flush()
}

// copyDB copies the history in from into to and proves it complete.
func copyDB(ctx context.Context, from, to string, keep export.Retention, stdout, stderr io.Writer) error {
	if from == to {
		return errors.New("--from and --to name the same database")
	}
	if !isPostgres(from) && !isDynamoDB(from) {
		// Opening a SQLite path creates it: a typo would copy nothing, "successfully".
		if _, err := os.Stat(from); err != nil {
			return fmt.Errorf("--from %s: %w", from, err)
		}
	}
	if err := migrate(ctx, to, stdout); err != nil {
		return err
	}
	src, err := openCore(ctx, from, keep)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := openCore(ctx, to, keep)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()

	fmt.Fprintf(stderr, "copying %s into %s\n", displayDB(from), displayDB(to))
	start := time.Now()
	srcSums, written, err := store.Copy(ctx, dst, src, progress(stderr, "copy"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "verifying %s\n", displayDB(to))
	dstSums, err := store.Checksums(ctx, dst, progress(stderr, "verify"))
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSOURCE\tDESTINATION\tWRITTEN\tSOURCE SHA-256\tDESTINATION SHA-256\t")
	var differ []string
	for i, s := range srcSums {
		d := dstSums[i]
		mark := "ok"
		if s.Count != d.Count || s.Sum != d.Sum {
			mark = "DIFFERENT"
			differ = append(differ, s.Table)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Table, s.Count, d.Count, written[s.Table], s.Sum, d.Sum, mark)
	}
	tw.Flush()
	if len(differ) > 0 {
		return fmt.Errorf("the copy differs from the source in %s: the destination holds rows the source does not, "+
			"or other versions of them (was it written to since, or by another source?)", strings.Join(differ, ", "))
	}
	fmt.Fprintf(stdout, "copy complete and verified in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// progress prints a copy's progress to w about once a second, and each
// table's last figures.
func progress(w io.Writer, what string) func(store.CopyProgress) {
	var (
		last    time.Time
		printed store.CopyProgress
	)
	return func(p store.CopyProgress) {
		done := p.Total >= 0 && p.Read == p.Total
		if p == printed || (p.Table == printed.Table && !done && time.Since(last) < time.Second) {
			return
		}
		printed, last = p, time.Now()
		line := fmt.Sprintf("  %s %s: %d read", what, p.Table, p.Read)
		if p.Total > 0 && !done {
			line = fmt.Sprintf("  %s %s: %d of %d read (%d%%)", what, p.Table, p.Read, p.Total, p.Read*100/p.Total)
		}
		if what == "copy" {
			line += fmt.Sprintf(", %d written", p.Written)
		}
		fmt.Fprintln(w, line)
	}
}
