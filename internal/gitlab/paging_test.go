package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

var t0 = time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)

type version struct {
	id int64
	at time.Time
}

// recorder collects what a walk emits and checks, at every page, that
// resuming from the page's cursor could not miss anything the server
// holds at that moment.
type recorder struct {
	t       *testing.T
	f       *fakeGitLab
	objs    map[int64]*fakeObj
	kind    change.Kind
	seen    map[version]int
	pages   int
	cursors []time.Time
}

func newRecorder(t *testing.T, f *fakeGitLab, objs map[int64]*fakeObj, kind change.Kind) *recorder {
	return &recorder{t: t, f: f, objs: objs, kind: kind, seen: map[version]int{}}
}

func (r *recorder) page(p Page) error {
	r.t.Helper()
	r.pages++
	if p.Kind != r.kind {
		r.t.Errorf("page kind %q, want %q", p.Kind, r.kind)
	}
	if n := len(r.cursors); n > 0 && p.Cursor.Before(r.cursors[n-1]) {
		r.t.Errorf("cursor went back from %s to %s", r.cursors[n-1], p.Cursor)
	}
	r.cursors = append(r.cursors, p.Cursor)
	for _, e := range p.Events {
		if e.Kind != r.kind {
			continue
		}
		if err := e.Validate(); err != nil {
			r.t.Errorf("invalid event: %v", err)
		}
		var id int64
		if r.kind == change.KindMergeRequest {
			_, _ = fmt.Sscanf(e.ID, "mr-7-%d", &id)
		} else {
			_, _ = fmt.Sscanf(e.ID, "pipeline-7-%d", &id)
		}
		r.seen[version{id, e.UpdatedAt}]++
	}
	for id, at := range r.f.snapshot(r.objs) {
		if at.Before(p.Cursor) && r.seen[version{id, at}] == 0 {
			r.t.Errorf("after page %d (cursor %s): object %d updated %s not emitted yet; a resume would miss it", r.pages, p.Cursor.Format(time.RFC3339Nano), id, at.Format(time.RFC3339Nano))
		}
	}
	return nil
}

// check asserts no duplicates and that the final state of every object
// was emitted.
func (r *recorder) check() {
	r.t.Helper()
	for v, n := range r.seen {
		if n > 1 {
			r.t.Errorf("object %d at %s emitted %d times", v.id, v.at.Format(time.RFC3339Nano), n)
		}
	}
	missing := 0
	for id, at := range r.f.snapshot(r.objs) {
		if r.seen[version{id, at}] == 0 {
			missing++
			if missing < 5 {
				r.t.Errorf("object %d as of %s never emitted", id, at.Format(time.RFC3339Nano))
			}
		}
	}
	if missing > 0 {
		r.t.Errorf("%d objects missed", missing)
	}
}

func times(from time.Time, n int, step time.Duration) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = from.Add(time.Duration(i) * step)
	}
	return out
}

func TestMergeRequestsPageByTimeWhileObjectsChange(t *testing.T) {
	f := newFakeGitLab(t)
	// 350 MRs 700ms apart: several share a second, none share a time.
	f.add(f.mrs, 1, "opened", times(t0.Add(7*time.Millisecond), 350, 700*time.Millisecond)...)
	now := t0.Add(time.Hour)
	next := int64(1000)
	f.beforeList = func(n int) {
		if n == 0 || n > 12 {
			return
		}
		// Between pages, as on a busy GitLab: the oldest MR (already
		// read) and one further on are updated, which moves both to the
		// end and shifts every offset in between; a new MR appears.
		var oldest *fakeObj
		for _, o := range f.mrs {
			if oldest == nil || o.Updated.Before(oldest.Updated) {
				oldest = o
			}
		}
		for _, o := range []*fakeObj{oldest, f.mrs[int64(100+n*20)]} {
			now = now.Add(1500 * time.Millisecond)
			o.Updated, o.State = now, "merged"
		}
		now = now.Add(time.Second)
		f.mrs[next] = &fakeObj{ID: next, IID: next, Created: now, Updated: now, State: "opened"}
		next++
	}
	c := f.client(t)
	rec := newRecorder(t, f, f.mrs, change.KindMergeRequest)
	if err := c.MergeRequests(context.Background(), Project{ID: 7, Path: "group/app"}, time.Time{}, rec.page); err != nil {
		t.Fatal(err)
	}
	rec.check()
	if f.listCalls < 4 {
		t.Errorf("only %d listing requests", f.listCalls)
	}
	if c.Requests() != int64(f.listCalls) {
		t.Errorf("Requests() = %d, server saw %d", c.Requests(), f.listCalls)
	}
	// Time paging never asks for a page past the first while times
	// advance, so no X-Total arithmetic can creep in.
	for _, q := range f.queries {
		if q.Get("page") != "1" {
			t.Errorf("unexpected offset paging: %v", q)
		}
	}
}

func TestMergeRequestsTieLongerThanAPage(t *testing.T) {
	tie := t0.Add(10*time.Minute + 100*time.Millisecond)
	for _, tc := range []struct {
		step   time.Duration // between the tie's objects, all within one second
		mutate bool
	}{{0, false}, {0, true}, {3 * time.Millisecond, false}, {3 * time.Millisecond, true}} {
		t.Run(fmt.Sprintf("step=%s,mutate=%v", tc.step, tc.mutate), func(t *testing.T) {
			f := newFakeGitLab(t)
			f.add(f.mrs, 1, "opened", times(t0, 30, time.Second)...)
			// A bulk edit: 250 MRs updated within one second, the
			// precision updated_after has.
			f.add(f.mrs, 100, "closed", times(tie, 250, tc.step)...)
			f.add(f.mrs, 400, "opened", times(tie.Add(3*time.Second), 30, time.Second)...)
			if tc.mutate {
				now := t0.Add(time.Hour)
				victim := int64(100)
				f.beforeList = func(n int) {
					q := f.queries[len(f.queries)-1]
					if (q.Get("page") == "2" || q.Get("page") == "3") && victim < 110 {
						// An MR of the tie already read is updated
						// while the tie is walked by offset: every
						// later one shifts back by one.
						now = now.Add(time.Second)
						f.mrs[victim].Updated = now
						victim++
					}
				}
			}
			c := f.client(t)
			rec := newRecorder(t, f, f.mrs, change.KindMergeRequest)
			if err := c.MergeRequests(context.Background(), Project{ID: 7, Path: "group/app"}, time.Time{}, rec.page); err != nil {
				t.Fatal(err)
			}
			rec.check()
			if got := len(rec.seen); got < 310 {
				t.Errorf("emitted %d versions, want at least 310", got)
			}
			var offset bool
			for _, q := range f.queries {
				if q.Get("page") == "2" && strings.HasPrefix(q.Get("updated_after"), "2024-03-01T09:10:00") {
					offset = true
				}
			}
			if !offset {
				t.Errorf("the tie was not walked with X-Next-Page: %v", f.queries)
			}
		})
	}
}

func TestMergeRequestsSinceAndResume(t *testing.T) {
	f := newFakeGitLab(t)
	f.add(f.mrs, 1, "opened", times(t0.Add(250*time.Millisecond), 260, 2*time.Second)...)
	c := f.client(t)
	p := Project{ID: 7, Path: "group/app"}

	since := t0.Add(100 * time.Second) // MR 51 onwards (t0+100.25s)
	var got []change.Event
	err := c.MergeRequests(context.Background(), p, since, func(pg Page) error {
		got = append(got, pg.Events...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 210 || got[0].ID != "mr-7-51" {
		t.Fatalf("since %s: got %d events starting %s", since, len(got), got[0].ID)
	}
	if q := f.queries[0].Get("updated_after"); q != "2024-03-01T09:01:40Z" {
		t.Errorf("updated_after = %q", q)
	}

	// A crash after the first page: resuming from its cursor loses
	// nothing.
	stop := errors.New("crash")
	var cursor time.Time
	first := map[string]bool{}
	err = c.MergeRequests(context.Background(), p, time.Time{}, func(pg Page) error {
		for _, e := range pg.Events {
			first[e.ID] = true
		}
		cursor = pg.Cursor
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("fn's error not returned: %v", err)
	}
	if len(first) != 100 {
		t.Fatalf("first page has %d events", len(first))
	}
	err = c.MergeRequests(context.Background(), p, cursor, func(pg Page) error {
		for _, e := range pg.Events {
			first[e.ID] = true
		}
		return nil
	})
	if err != nil || len(first) != 260 {
		t.Fatalf("after resume: %d of 260 (%v)", len(first), err)
	}
}

func TestListingOutOfOrderIsRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{
			{"id": 1, "iid": 1, "updated_at": "2024-01-02T00:00:00Z", "created_at": "2024-01-01T00:00:00Z"},
			{"id": 2, "iid": 2, "updated_at": "2024-01-01T00:00:00Z", "created_at": "2024-01-01T00:00:00Z"},
		})
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	err = c.MergeRequests(context.Background(), Project{ID: 7}, time.Time{}, func(Page) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "not ordered by updated_at") {
		t.Fatalf("got %v", err)
	}
}

func TestPipelinesFetchJobsOfFailedOnes(t *testing.T) {
	f := newFakeGitLab(t)
	f.add(f.pipelines, 1, "success", times(t0, 120, time.Second)...)
	f.add(f.pipelines, 500, "failed", t0.Add(5*time.Minute))
	f.add(f.pipelines, 501, "running", t0.Add(6*time.Minute))
	raw, err := os.ReadFile("testdata/docs_list_pipeline_jobs.json")
	if err != nil {
		t.Fatal(err)
	}
	var jobs []map[string]any
	if err := json.Unmarshal(raw, &jobs); err != nil {
		t.Fatal(err)
	}
	// The docs' second job passes here, so failed_jobs has to choose.
	jobs[1]["status"], jobs[1]["failure_reason"] = "success", nil
	f.jobs[500] = jobs

	c := f.client(t)
	rec := newRecorder(t, f, f.pipelines, change.KindPipeline)
	var all []change.Event
	err = c.Pipelines(context.Background(), Project{ID: 7, Path: "group/app"}, time.Time{}, func(p Page) error {
		all = append(all, p.Events...)
		return rec.page(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.check()
	if want := int64(f.listCalls + 1); c.Requests() != want {
		t.Errorf("Requests() = %d, want %d (listings plus one jobs listing)", c.Requests(), want)
	}

	var failed *change.Event
	var jobEvents []change.Event
	for i, e := range all {
		switch {
		case e.ID == "pipeline-7-500":
			failed = &all[i]
		case e.Kind == change.KindJob:
			jobEvents = append(jobEvents, e)
		}
	}
	if failed == nil {
		t.Fatal("failed pipeline not emitted")
	}
	fj, _ := failed.Attrs["failed_jobs"].([]map[string]any)
	if len(fj) != 1 || fj[0]["name"] != "rspec:other" || fj[0]["failure_reason"] != "stuck_or_timeout_failure" ||
		fj[0]["stage"] != "test" || fj[0]["duration"] != int64(0) || fj[0]["web_url"] != "https://example.com/foo/bar/-/jobs/6" {
		t.Errorf("failed_jobs = %#v", failed.Attrs["failed_jobs"])
	}
	if len(jobEvents) != 2 || jobEvents[0].ID != "job-7-6" || jobEvents[1].ID != "job-7-7" {
		t.Errorf("job events = %+v", jobEvents)
	}
	for _, e := range all {
		if e.ID == "pipeline-7-501" {
			if _, ok := e.Attrs["failed_jobs"]; ok {
				t.Error("jobs fetched for a running pipeline")
			}
		}
	}
}
