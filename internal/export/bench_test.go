package export_test

import (
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// benchEvents is how many events BenchmarkExport stores and exports:
// LABTRAIL_BENCH_EXPORT_EVENTS, default 1,000,000.
func benchEvents(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("LABTRAIL_BENCH_EXPORT_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("LABTRAIL_BENCH_EXPORT_EVENTS=%q: a positive number", v)
		}
	}
	return n
}

// BenchmarkExport writes every stored event (realistic merge requests and
// pipelines with their timelines) as NDJSON and as CSV, and reports the
// time per export, events/s and the peak heap in use while exporting: an
// export streams page by page, so the peak stays flat however many events
// there are.
func BenchmarkExport(b *testing.B) {
	n := benchEvents(b)
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			s := be.Open(b)
			seedHistories(b, s, n)
			for _, format := range []export.Format{export.NDJSON, export.CSV} {
				b.Run(string(format), func(b *testing.B) {
					var peak uint64
					for b.Loop() {
						stop := samplePeakHeap(&peak)
						got, err := export.Write(b.Context(), io.Discard, s, format, store.Filter{}, nil)
						stop()
						if err != nil || got != int64(n) {
							b.Fatalf("exported %d of %d: %v", got, n, err)
						}
					}
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
					b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
				})
			}
		})
	}
}

// seedHistories stores n realistic events with their timelines, a
// thousand per transaction.
func seedHistories(b *testing.B, s store.Store, n int) {
	b.Helper()
	start := time.Now()
	hs := make([]store.History, 0, 1000)
	for i := range n {
		e := storetest.Realistic(i)
		h := store.History{Event: e}
		for _, tr := range e.Transitions {
			h.Timeline = append(h.Timeline, change.TimelineEntry{EventID: e.ID, State: tr.State, At: tr.At, Source: e.Source})
		}
		hs = append(hs, h)
		if len(hs) == cap(hs) || i == n-1 {
			if _, err := s.ImportEvents(b.Context(), hs...); err != nil {
				b.Fatal(err)
			}
			hs = hs[:0]
		}
	}
	b.Logf("stored %d events in %s", n, time.Since(start).Round(time.Second))
}

// samplePeakHeap records the largest HeapInuse seen, every 5 ms, into
// peak until stop is called.
func samplePeakHeap(peak *uint64) (stop func()) {
	runtime.GC()
	var done atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for !done.Load() {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > *peak {
				*peak = ms.HeapInuse
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() { done.Store(true); <-finished }
}
