package jobs_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/labtrail/labtrail/internal/digest"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// TestScheduledDigestOnceAcrossReplicas runs two job clients on one
// database, each with the digest scheduled every half second, sending to a
// receiver standing in for Slack that fails the first post: the queue
// retries the period's job, and the period is sent once, by whichever
// replica leads, also after the leader stops and the other takes over;
// the next period is sent once too.
func TestScheduledDigestOnceAcrossReplicas(t *testing.T) { forEachBackend(t, testScheduledDigest) }

func testScheduledDigest(t *testing.T, b backend) {
	ctx := context.Background()
	st, qdb, newQ := b.open(t)
	sim := gitlabsim.New(gitlabsim.Options{Seed: 1, Projects: 1, MRs: 1, Pipelines: 1, Token: "tok"})
	ts := httptest.NewServer(sim)
	defer ts.Close()

	var mu sync.Mutex
	var posts []string
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		posts = append(posts, string(b))
		if len(posts) == 1 {
			http.Error(w, "down for a moment", http.StatusInternalServerError)
		}
	}))
	defer slack.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(posts) }

	// The period ends where the test says; each replica makes and sends
	// its digest as serve does.
	var until atomic.Value
	until.Store(time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC))
	newReplica := func(id string) *jobs.Queue {
		cl, err := gitlab.New(gitlab.Config{URL: ts.URL, Token: "tok", RequestsPerMinute: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		sender := &digest.Sender{Store: st, Log: quiet, Attempts: 1}
		q, err := newQ(ctx, jobs.Config{Poller: &ingest.Poller{GitLab: cl, Store: st, Log: quiet}, Interval: time.Hour, Log: quiet, ID: id,
			Digest: &jobs.Digest{
				Schedule:  river.PeriodicInterval(500 * time.Millisecond),
				PeriodEnd: func(time.Time) time.Time { return until.Load().(time.Time) },
				Send: func(ctx context.Context, end time.Time) error {
					d, err := digest.Build(ctx, metrics.New(st, metrics.Config{}), st, digest.Options{Period: digest.Week, Now: end})
					if err != nil {
						return err
					}
					return sender.Send(ctx, d, digest.Slack(slack.URL+"/services/T/B/secret"))[0].Err
				},
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return q
	}
	one, two := newReplica("one"), newReplica("two")
	defer one.Stop(ctx)
	defer two.Stop(ctx)

	sent := func(key string) store.DigestSend {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			sends, err := st.DigestSends(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sends {
				if s.Key == key && !s.SentAt.IsZero() {
					return s
				}
			}
		}
		t.Fatalf("%s never sent (%d posts)", key, count())
		return store.DigestSend{}
	}
	jobsOf := func() (n int) {
		t.Helper()
		if err := qdb.QueryRow(`SELECT count(*) FROM river_job WHERE kind = '` + jobs.DigestKind + `'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	rec := sent("week:2026-03-09:UTC:all")
	if rec.Attempts != 2 || count() != 2 {
		t.Fatalf("after a refused post: %+v, %d posts", rec, count())
	}
	// Many rounds of the schedule later, on both replicas, and after the
	// leader stops: nothing more.
	time.Sleep(2 * time.Second)
	var leader string
	if err := qdb.QueryRow(`SELECT leader_id FROM river_leader`).Scan(&leader); err != nil {
		t.Fatal(err)
	}
	map[string]*jobs.Queue{"one": one, "two": two}[leader].Stop(ctx)
	other := map[string]string{"one": "two", "two": "one"}[leader]
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var now string
		if qdb.QueryRow(`SELECT leader_id FROM river_leader`).Scan(&now) == nil && now == other {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never led", other)
		}
	}
	time.Sleep(2 * time.Second)
	if count() != 2 || jobsOf() != 1 {
		t.Fatalf("%d posts and %d digest jobs after more rounds and a new leader, want 2 and 1", count(), jobsOf())
	}

	// The next period: once, by the new leader.
	until.Store(time.Date(2026, 3, 23, 0, 0, 0, 0, time.UTC))
	sent("week:2026-03-16:UTC:all")
	time.Sleep(time.Second)
	if count() != 3 || jobsOf() != 2 {
		t.Errorf("%d posts and %d digest jobs after the next period, want 3 and 2", count(), jobsOf())
	}
}
