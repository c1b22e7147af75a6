package server_test

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/server"
)

// BenchmarkPages measures every page of the dashboard over real HTTP on
// the delivery-metrics benchmark's history (1,000,000 events, 50 projects,
// a year; see BenchmarkMetricsEndpoints, whose cached stores it reuses),
// over every project and over one: each navigation page (server.NavPaths)
// with its default filter, the timeline's page 500 reached by following
// its Older links (only page 500's own request is measured), and the
// detail page of a merge request. The seeded history ends on 2026-01-01,
// so a page with a time window is asked for the default 30 days placed at
// the history's end (since and until dates), not the 30 days before today,
// which hold nothing; the timeline's page 500 over the whole year. Each
// op is one request read to its end; p50-ms and p95-ms are over the op's
// requests (run with -benchtime 20x).
func BenchmarkPages(b *testing.B) {
	window := url.Values{"since": {historyEnd.AddDate(0, 0, -30).Format(time.DateOnly)}, "until": {historyEnd.AddDate(0, 0, -1).Format(time.DateOnly)}}
	var targets []historyTarget
	for _, p := range server.NavPaths() {
		name, q := strings.Trim(p, "/"), window
		if name == "" {
			name = "overview"
		}
		if p == "/sync" {
			q = nil // no time window: what it shows is the sync's state now
		}
		targets = append(targets, historyTarget{name, p, q})
	}
	year := url.Values{"since": {historyStart.Format(time.DateOnly)}, "until": {historyEnd.AddDate(0, 0, -1).Format(time.DateOnly)}}
	targets = append(targets,
		historyTarget{"timeline-page-500", "/timeline", year},
		// Measured on the detail page of the merge request this lists.
		historyTarget{"event-merge-request", "/api/v1/events", url.Values{"kind": {"merge_request"}, "limit": {"1"}}},
	)
	benchHistory(b, targets, func(b *testing.B, target string) {
		client := &http.Client{}
		switch {
		case strings.Contains(b.Name(), "/timeline-page-500/"):
			u, _ := url.Parse(target)
			for n := 1; n < 500; n++ {
				next, ok := nextPageLink(benchGet(b, client, target))
				if !ok {
					b.Skipf("%s: the history holds %d pages of it, not 500", u.RequestURI(), n)
				}
				target = u.Scheme + "://" + u.Host + next
			}
		case strings.Contains(b.Name(), "/event-merge-request/"):
			var ans struct {
				Events []struct {
					ID string `json:"id"`
				} `json:"events"`
			}
			if err := json.Unmarshal(benchGet(b, client, target), &ans); err != nil || len(ans.Events) == 0 {
				b.Fatalf("%s: no merge request to show: %v", target, err)
			}
			target = target[:strings.Index(target, "/api/")] + "/events/" + url.PathEscape(ans.Events[0].ID)
		}
		body := benchGet(b, client, target)
		if !bytes.Contains(body, []byte("<main")) {
			b.Fatalf("%s: not a page", target)
		}
		b.Logf("%s: %d bytes", target, len(body))
		measureLatency(b, func() { benchGet(b, client, target) })
	})
}

// nextPageRe finds a page's link to its next (older) page.
var nextPageRe = regexp.MustCompile(`<a[^>]*href="([^"]+)"[^>]*rel="next"|<a[^>]*rel="next"[^>]*href="([^"]+)"`)

// nextPageLink is the path of the page after body's, its rel="next" link.
func nextPageLink(body []byte) (string, bool) {
	m := nextPageRe.FindSubmatch(body)
	if m == nil {
		return "", false
	}
	link := html.UnescapeString(string(m[1]) + string(m[2]))
	if i := strings.Index(link, "#"); i >= 0 {
		link = link[:i]
	}
	return link, strings.HasPrefix(link, "/")
}
