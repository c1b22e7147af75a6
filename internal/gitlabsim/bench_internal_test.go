package gitlabsim

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHandlerMRPage measures the server side of one page alone.
func BenchmarkHandlerMRPage(b *testing.B) {
	s := New(Options{Projects: 1, MRs: 10000, Pipelines: 100, Now: func() time.Time { return time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC) }})
	pid := strconv.FormatInt(s.w.projects[0].id, 10)
	for _, q := range []string{"state=all&page=3", "state=opened&updated_after=2025-02-01T00:00:00Z&per_page=100"} {
		b.Run(q, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/api/v4/projects/"+pid+"/merge_requests?"+q, nil)
			r.Header.Set("PRIVATE-TOKEN", "sim-token")
			for b.Loop() {
				s.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
