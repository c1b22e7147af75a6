package server_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

// BenchmarkMetricsPages measures the metrics pages over real HTTP on the
// delivery-metrics benchmark's history (1,000,000 events, see
// BenchmarkMetricsEndpoints): each page over the history's last 30 days
// (the pages' default window), over every project and over one. The
// overview computes DORA over the last 7, 30 and 90 days, the week's
// merge-request flow and pipeline health, and the latest incidents with
// the changes before each; the other pages one metric each. Run with
// -benchtime 20x; p50-ms and p95-ms are per page request.
func BenchmarkMetricsPages(b *testing.B) {
	window := url.Values{"since": {historyEnd.AddDate(0, 0, -30).Format("2006-01-02")}, "until": {historyEnd.AddDate(0, 0, -1).Format("2006-01-02")}}
	pages := []struct {
		name  string
		path  string
		extra url.Values
	}{
		{"overview", "/", nil},
		{"merge-requests", "/merge-requests", nil},
		{"pipelines", "/pipelines", url.Values{"bucket": {"day"}}},
		{"deployments", "/deployments", nil},
	}
	scopes := []struct {
		name    string
		project []string
	}{{"all", nil}, {"project", []string{historyPath(7)}}}
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
			for _, p := range pages {
				for _, sc := range scopes {
					q := url.Values{}
					for k, v := range window {
						q[k] = v
					}
					for k, v := range p.extra {
						q[k] = v
					}
					if sc.project != nil {
						q["project"] = sc.project
					}
					target := hs.URL + p.path + "?" + q.Encode()
					b.Run(p.name+"/"+sc.name, func(b *testing.B) { benchPage(b, target) })
				}
			}
		})
	}
}

// benchPage requests the page target once per op, read to its end, and
// reports the requests' latency percentiles. One request first, not
// measured, checks it is a page with figures.
func benchPage(b *testing.B, target string) {
	client := &http.Client{}
	get := func() []byte {
		resp, err := client.Get(target)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: status %d: %v %s", target, resp.StatusCode, err, body)
		}
		return body
	}
	body := get()
	if !bytes.Contains(body, []byte(`data-value="`)) || bytes.Contains(body, []byte(`id="no-projects"`)) {
		b.Fatalf("%s: a page without figures", target)
	}
	b.Logf("%s: %d bytes", target, len(body))
	measureLatency(b, func() { get() })
}
