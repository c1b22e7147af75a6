package server_test

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

// BenchmarkPages measures every page of the dashboard over real HTTP on
// the delivery-metrics benchmark's history (1,000,000 events, 50 projects,
// a year; see BenchmarkMetricsEndpoints, whose cached stores it reuses):
// each navigation page (server.NavPaths) with its default filter over
// every project and with one project, the timeline's page 500 reached by
// following its Older links (only page 500's own request is measured),
// and the detail page of a merge request. The seeded history ends on
// 2026-01-01, so a page with a time window is asked for the default 30
// days placed at the history's end (since and until dates), not the 30
// days before today, which hold nothing. Each op is one request read to
// its end; p50-ms and p95-ms are over the op's requests (run with
// -benchtime 20x).
func BenchmarkPages(b *testing.B) {
	window := url.Values{"since": {historyEnd.AddDate(0, 0, -30).Format(time.DateOnly)}, "until": {historyEnd.AddDate(0, 0, -1).Format(time.DateOnly)}}
	one := historyPath(7)
	backends := []struct {
		name string
		open func(*testing.B) store.Store
	}{{"sqlite", historySQLite}, {"postgres", historyPostgres}}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			srv := server.New(st, nil)
			srv.EnableMetrics(metrics.New(st, metrics.Config{}))
			hs := httptest.NewServer(srv)
			defer hs.Close()
			client := &http.Client{}
			for _, p := range server.NavPaths() {
				name := strings.Trim(p, "/")
				if name == "" {
					name = "overview"
				}
				b.Run(name, func(b *testing.B) {
					// A page whose filter has no dates (the sync page) is
					// asked without them.
					windowed := bytes.Contains(benchGet(b, client, hs.URL+p), []byte(`name="since"`))
					for _, scope := range []string{"all", "project"} {
						q := url.Values{}
						if windowed {
							maps.Copy(q, window)
						}
						if scope == "project" {
							q.Set("project", one)
						}
						target := hs.URL + p
						if len(q) > 0 {
							target += "?" + q.Encode()
						}
						b.Run(scope, func(b *testing.B) { benchPageRequests(b, client, target) })
					}
				})
			}
			b.Run("timeline-page-500", func(b *testing.B) {
				target := hs.URL + "/timeline?" + window.Encode()
				for range 499 {
					target = hs.URL + olderLink(b, benchGet(b, client, target), target)
				}
				benchPageRequests(b, client, target)
			})
			b.Run("event-merge-request", func(b *testing.B) {
				var ans struct {
					Events []struct {
						ID string `json:"id"`
					} `json:"events"`
				}
				q := url.Values{"kind": {"merge_request"}, "project": {one}, "until": {historyEnd.Format(time.RFC3339)}, "limit": {"1"}}
				if err := json.Unmarshal(benchGet(b, client, hs.URL+"/api/v1/events?"+q.Encode()), &ans); err != nil || len(ans.Events) == 0 {
					b.Fatalf("no merge request to show: %v", err)
				}
				benchPageRequests(b, client, hs.URL+"/events/"+url.PathEscape(ans.Events[0].ID))
			})
		})
	}
}

// olderRe finds a page's link to its next (older) page.
var olderRe = regexp.MustCompile(`<a[^>]*href="([^"]+)"[^>]*rel="next"|<a[^>]*rel="next"[^>]*href="([^"]+)"`)

// olderLink is the path of the page after body's (its rel="next" link).
func olderLink(b *testing.B, body []byte, from string) string {
	m := olderRe.FindSubmatch(body)
	if m == nil {
		b.Fatalf("%s: no link to an older page (rel=\"next\")", from)
	}
	link := html.UnescapeString(string(m[1]) + string(m[2]))
	if i := strings.Index(link, "#"); i >= 0 {
		link = link[:i]
	}
	if !strings.HasPrefix(link, "/") {
		b.Fatalf("%s: older link %q is not a path", from, link)
	}
	return link
}

// benchGet fetches target, which must answer 200.
func benchGet(b *testing.B, client *http.Client, target string) []byte {
	resp, err := client.Get(target)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: status %d: %v %.300s", target, resp.StatusCode, err, body)
	}
	return body
}

// benchPageRequests requests the page target once per op and reports the
// requests' latency percentiles; one request first, not measured, checks
// it answers a page.
func benchPageRequests(b *testing.B, client *http.Client, target string) {
	body := benchGet(b, client, target)
	if !bytes.Contains(body, []byte("<main")) {
		b.Fatalf("%s: not a page", target)
	}
	b.Logf("%s: %d bytes", strings.TrimPrefix(target, "http://"), len(body))
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		benchGet(b, client, target)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	rank := func(q float64) time.Duration { return lat[max(0, int(math.Ceil(q*float64(len(lat))))-1)] }
	b.ReportMetric(float64(rank(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rank(0.95).Microseconds())/1000, "p95-ms")
}
