package server_test

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
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
	day := url.Values{"bucket": {"day"}}
	for k, v := range window {
		day[k] = v
	}
	benchHistory(b, []historyTarget{
		{"overview", "/", window},
		{"merge-requests", "/merge-requests", window},
		{"pipelines", "/pipelines", day},
		{"deployments", "/deployments", window},
	}, benchPage)
}

// benchPage requests the page target once per op, read to its end, and
// reports the requests' latency percentiles. One request first, not
// measured, checks it is a page with figures.
func benchPage(b *testing.B, target string) {
	client := &http.Client{}
	body := benchGet(b, client, target)
	if !bytes.Contains(body, []byte(`data-value="`)) || bytes.Contains(body, []byte(`id="no-projects"`)) {
		b.Fatalf("%s: a page without figures", target)
	}
	b.Logf("%s: %d bytes", target, len(body))
	measureLatency(b, func() { benchGet(b, client, target) })
}
