package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// TestJobDaysFollowJobs checks that fact_job_days holds exactly the
// counts of fact_jobs per day, name, stage, status and reason after jobs
// are written, rewritten and deleted (with their events), and after its
// migration fills it from jobs stored before it.
func TestJobDaysFollowJobs(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	job := func(id int64, status string, created time.Time, updated int) change.Event {
		return change.Event{ID: change.JobID(1, id), Kind: change.KindJob, ProjectID: 1, ProjectPath: "g/p",
			Title: "unit", State: status, SHA: "abcdef0", CreatedAt: created, UpdatedAt: day.Add(time.Duration(updated) * time.Minute),
			Source: change.SourcePoll, Attrs: map[string]any{"name": fmt.Sprint("job-", id%3), "stage": "test",
				"status": status, "failure_reason": map[bool]string{true: "script_failure"}[status == "failed"]}}
	}
	var es []change.Event
	for id := range int64(60) {
		// Some before 1970, where a day's start is not a truncation
		// towards zero.
		created := day.Add(time.Duration(id*197) * time.Minute)
		if id%10 == 0 {
			created = time.Date(1969, 12, 30, 23, int(id), 0, 0, time.UTC)
		}
		es = append(es, job(id, []string{"success", "failed", "running"}[id%3], created, 1))
	}
	if _, err := s.Upsert(ctx, es...); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		read := func(q string) map[string]int {
			rows, err := s.DB().QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[string]int{}
			for rows.Next() {
				var (
					d                           int64
					name, stage, status, reason string
					n                           int
				)
				if err := rows.Scan(&d, &name, &stage, &status, &reason, &n); err != nil {
					t.Fatal(err)
				}
				out[fmt.Sprint(time.Unix(0, d).UTC().Format(time.DateOnly), name, stage, status, reason)] = n
			}
			return out
		}
		days := read(`SELECT day, name, stage, status, failure_reason, runs FROM fact_job_days`)
		jobs := map[string]int{}
		rows, err := s.DB().QueryContext(ctx, `SELECT created_at, name, stage, status, failure_reason FROM fact_jobs`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var (
				c                           int64
				name, stage, status, reason string
			)
			if err := rows.Scan(&c, &name, &stage, &status, &reason); err != nil {
				t.Fatal(err)
			}
			jobs[fmt.Sprint(time.Unix(0, c).UTC().Format(time.DateOnly), name, stage, status, reason)]++
		}
		rows.Close()
		if len(jobs) == 0 {
			t.Fatalf("%s: no jobs: the check checks nothing", when)
		}
		if !reflect.DeepEqual(days, jobs) {
			t.Fatalf("%s: fact_job_days\n%v\nfact_jobs counted\n%v", when, days, jobs)
		}
	}
	check("written")

	es = es[:0]
	for id := int64(0); id < 60; id += 2 {
		es = append(es, job(id, "success", day.Add(time.Duration(id*61)*time.Minute), 2)) // status and day change
	}
	if _, err := s.Upsert(ctx, es...); err != nil {
		t.Fatal(err)
	}
	check("rewritten")

	if _, err := s.DB().ExecContext(ctx, `DELETE FROM events WHERE kind = 'job' AND id LIKE 'job-1-1%'`); err != nil {
		t.Fatal(err)
	}
	check("deleted")

	// The migration fills the table from the jobs stored before it.
	p, err := goose.NewProvider(goose.DialectSQLite3, s.DB(), os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	check("migrated")
}
