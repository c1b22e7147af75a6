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
// counts of fact_jobs per day, name, stage, status and reason, and that
// the failed runs flagged flaky are exactly those with a later success of
// their name on their sha, after jobs
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
			Source: change.SourcePoll, Attrs: map[string]any{"name": fmt.Sprint("job-", id%4), "stage": "test",
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
		ids := func(q string) []string {
			rows, err := s.DB().QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				out = append(out, id)
			}
			return out
		}
		flagged := ids(`SELECT id FROM fact_jobs WHERE flaky = 1 ORDER BY id`)
		flaky := ids(`SELECT id FROM fact_jobs f WHERE status = 'failed' AND EXISTS (SELECT 1 FROM fact_jobs ok
			WHERE ok.project_id = f.project_id AND ok.sha = f.sha AND ok.name = f.name AND ok.status = 'success'
			AND ok.created_at > f.created_at) ORDER BY id`)
		if len(flaky) == 0 {
			t.Fatalf("%s: no flaky run: the flags are not checked", when)
		}
		if !reflect.DeepEqual(flagged, flaky) {
			t.Fatalf("%s: runs flagged flaky %v, flaky %v", when, flagged, flaky)
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

	if _, err := s.DB().ExecContext(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM fact_jobs WHERE status = 'success' ORDER BY created_at DESC LIMIT 12)`); err != nil {
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
