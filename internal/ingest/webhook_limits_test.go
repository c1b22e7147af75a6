package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/ingest"
)

// bigPayload is a JSON object of exactly n bytes.
func bigPayload(n int) []byte {
	head, tail := `{"object_kind":"push","padding":"`, `"}`
	b := make([]byte, n)
	copy(b, head)
	for i := len(head); i < n-len(tail); i++ {
		b[i] = 'x'
	}
	copy(b[n-len(tail):], tail)
	return b
}

// heapPeak samples the bytes of heap objects (live and not yet swept)
// until stop is called, which returns the highest seen.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapCeiling is the bound docs/webhooks.md states: the payloads in
// memory are at most the budget, and the collector lets the heap grow to
// twice what was live at its last run (GOGC=100), so the heap stays under
// twice the budget plus the rest of the heap, and one payload allocated
// while a collection is under way.
func heapCeiling(rest, budget uint64) uint64 {
	return 2*(rest+budget) + ingest.MaxWebhookBody
}

// TestWebhookMemoryIsBounded sends four 25 MB deliveries at once over HTTP
// to the handler on a real SQLite store: all are stored, each allocates
// little more than its own size, and the heap stays under the ceiling
// docs/webhooks.md states. Before the budget, io.ReadAll's doubling and a
// copy for the digest made one delivery allocate some 90 MB, and four at
// once peaked at 421 MB of RSS in `labtrail serve` (issue 11).
func TestWebhookMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 150 MB")
	}
	const n = 4
	// Under the race detector a 25 MB delivery takes a second or more;
	// the wait is not what this test is about.
	h, st, rec := newHook(t, func(c *ingest.WebhookConfig) { c.MemoryWait = time.Minute })
	srv := httptest.NewServer(h)
	defer srv.Close()
	payload := bigPayload(ingest.MaxWebhookBody)

	runtime.GC()
	rest := readMetric("/memory/classes/heap/objects:bytes")
	allocsBefore := readMetric("/gc/heap/allocs:bytes")
	stop := heapPeak()
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(payload))
			req.Header.Set("X-Gitlab-Event", "Push Hook")
			req.Header.Set("X-Gitlab-Token", hookSecret)
			req.Header.Set("Idempotency-Key", fmt.Sprint("big-", i))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	peak := stop()
	allocs := readMetric("/gc/heap/allocs:bytes") - allocsBefore
	ceiling := heapCeiling(rest, ingest.DefaultWebhookMemory)
	t.Logf("%d concurrent %d MB deliveries: heap %d MiB before (the client's payload included), peak %d MiB, ceiling %d MiB; %d MiB allocated in all",
		n, ingest.MaxWebhookBody>>20, rest>>20, peak>>20, ceiling>>20, allocs>>20)
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("delivery %d: status %d, want 200", i, c)
		}
	}
	if got := countDeliveries(t, st); got != n || len(rec.ids) != n {
		t.Errorf("%d stored, %d queued; want %d", got, len(rec.ids), n)
	}
	if peak > ceiling {
		t.Errorf("heap peaked at %d MiB, over the stated ceiling of %d MiB", peak>>20, ceiling>>20)
	}
	// Each delivery's own buffer, and a little: no doubling, no copy.
	if limit := uint64(n) * ingest.MaxWebhookBody * 5 / 4; allocs > limit {
		t.Errorf("%d MiB allocated for %d deliveries of %d MiB, want at most %d MiB", allocs>>20, n, ingest.MaxWebhookBody>>20, limit>>20)
	}
}

// holdBudget starts a delivery whose body arrives only when the returned
// finish is called; when holdBudget returns, its handler has been
// admitted (it is reading the body) and holds its share of the budget.
func holdBudget(t *testing.T, h http.Handler) (finish func() *httptest.ResponseRecorder) {
	t.Helper()
	pr, pw := io.Pipe()
	req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/gitlab", pr)
	req.ContentLength = int64(len(mrPayload))
	req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
	req.Header.Set("X-Gitlab-Token", hookSecret)
	req.Header.Set("Idempotency-Key", "slow")
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		done <- w
	}()
	// The pipe hands the bytes over only when the handler reads them.
	if _, err := pw.Write([]byte(mrPayload[:10])); err != nil {
		t.Fatal(err)
	}
	return func() *httptest.ResponseRecorder {
		if _, err := pw.Write([]byte(mrPayload[10:])); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		return <-done
	}
}

// TestWebhookWaitsForMemory: a delivery that finds the memory budget
// taken waits for it; one that would wait longer than MemoryWait gets 503
// with Retry-After (GitLab retries it), and one whose client went away
// stops waiting; neither stores anything.
func TestWebhookWaitsForMemory(t *testing.T) {
	t.Run("too long", func(t *testing.T) {
		h, st, rec := newHook(t, func(c *ingest.WebhookConfig) {
			c.Memory = 100 // less than the held delivery: it takes all
			c.MemoryWait = 10 * time.Millisecond
		})
		finish := holdBudget(t, h)
		w := post(h, `{"object_kind":"merge_request","n":2}`, map[string]string{"Idempotency-Key": "second"})
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "retry") {
			t.Errorf("while the budget is taken: status %d %s, Retry-After %q; want 503 with Retry-After",
				w.Code, w.Body, w.Header().Get("Retry-After"))
		}
		if n := countDeliveries(t, st); n != 0 {
			t.Errorf("%d deliveries stored while the first was still arriving, want 0", n)
		}
		if w := finish(); w.Code != http.StatusOK {
			t.Errorf("held delivery: status %d %s, want 200", w.Code, w.Body)
		}
		if w := post(h, `{"object_kind":"merge_request","n":3}`, map[string]string{"Idempotency-Key": "third"}); w.Code != http.StatusOK {
			t.Errorf("after the budget freed: status %d %s, want 200", w.Code, w.Body)
		}
		if n := countDeliveries(t, st); n != 2 || len(rec.ids) != 2 {
			t.Errorf("%d stored, %d queued; want 2", n, len(rec.ids))
		}
	})
	t.Run("admitted when room frees", func(t *testing.T) {
		h, st, _ := newHook(t, func(c *ingest.WebhookConfig) {
			c.Memory = 100 // less than the held delivery: it takes all
			c.MemoryWait = time.Hour
		})
		finish := holdBudget(t, h)
		waiting := make(chan *httptest.ResponseRecorder)
		go func() {
			waiting <- post(h, `{"object_kind":"merge_request","n":2}`, map[string]string{"Idempotency-Key": "second"})
		}()
		if w := finish(); w.Code != http.StatusOK {
			t.Errorf("held delivery: status %d %s, want 200", w.Code, w.Body)
		}
		if w := <-waiting; w.Code != http.StatusOK {
			t.Errorf("waiting delivery: status %d %s, want 200", w.Code, w.Body)
		}
		if n := countDeliveries(t, st); n != 2 {
			t.Errorf("%d stored, want 2", n)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		h, st, _ := newHook(t, func(c *ingest.WebhookConfig) {
			c.Memory = 100 // less than the held delivery: it takes all
			c.MemoryWait = time.Hour
		})
		finish := holdBudget(t, h)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/webhooks/gitlab", strings.NewReader(mrPayload))
		req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
		req.Header.Set("X-Gitlab-Token", hookSecret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("cancelled while waiting: status %d %s, want 503", w.Code, w.Body)
		}
		finish()
		if n := countDeliveries(t, st); n != 1 {
			t.Errorf("%d stored, want only the held one", n)
		}
	})
}

// TestWebhookBodyLength: a body that ends before its Content-Length, or
// runs past it, is refused with 400 and stores nothing; a body without a
// Content-Length (chunked) is read whole and stored.
func TestWebhookBodyLength(t *testing.T) {
	for _, tc := range []struct {
		name   string
		length int64
		code   int
	}{
		{"short", int64(len(mrPayload)) + 5, http.StatusBadRequest},
		{"long", int64(len(mrPayload)) - 5, http.StatusBadRequest},
		{"unknown", -1, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, st, _ := newHook(t, nil)
			// The body is given as a plain reader: httptest would
			// otherwise set the length from it.
			req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/gitlab", io.MultiReader(strings.NewReader(mrPayload)))
			req.ContentLength = tc.length
			req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
			req.Header.Set("X-Gitlab-Token", hookSecret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.code {
				t.Errorf("status %d %s, want %d", w.Code, w.Body, tc.code)
			}
			want := 0
			if tc.code == http.StatusOK {
				want = 1
			}
			if n := countDeliveries(t, st); n != want {
				t.Errorf("%d stored, want %d", n, want)
			}
		})
	}
}
