package server_test

import (
	"encoding/json"
	"html"
	"strings"
	"testing"
)

// chartData is the JSON of the chart whose data block is id.
func chartData(t *testing.T, doc, id string) map[string]any {
	t.Helper()
	start := `<script type="application/json" id="` + id + `">`
	i := strings.Index(doc, start)
	if i < 0 {
		t.Fatalf("no chart data %s", id)
	}
	body := doc[i+len(start):]
	body = body[:strings.Index(body, "</script>")]
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("chart %s: %v: %s", id, err, body)
	}
	return m
}

// The merge-request page's figures are GET /api/v1/metrics/merge-requests's
// for the same filter, its throughput chart the API's throughput.
func TestMergeRequestsPageFiguresAreTheAPIs(t *testing.T) {
	ts, _, logs := pagesSetup(t)
	for _, filter := range []string{"", "project=acme/api&", "group=acme/sub&", "bucket=day&", "bucket=month&project=acme/web&"} {
		t.Run(filter, func(t *testing.T) {
			doc := okPage(t, ts.URL+"/merge-requests?"+filter+pagesWindow)
			api, _ := asJSON(t, ts.URL, doc)
			for id, path := range map[string]string{
				"mr-merged": "merged", "mr-cycle-median": "cycle.median_seconds", "mr-cycle-p90": "cycle.p90_seconds",
				"mr-size-lines": "size.median_lines", "mr-size-files": "size.median_files",
			} {
				sameFigure(t, id, figure(t, doc, id), apiFigure(t, api, path))
			}
			for _, stage := range []string{"coding", "pickup", "review", "deploy"} {
				sameFigure(t, stage+" count", figure(t, doc, "mr-"+stage+"-count"), apiFigure(t, api, stage+".count"))
				sameFigure(t, stage+" median", figure(t, doc, "mr-"+stage+"-median"), apiFigure(t, api, stage+".median_seconds"))
			}
			ch := chartData(t, doc, "mr-throughput-data")
			through := api["throughput"].([]any)
			xs, vals := ch["x"].([]any), ch["series"].([]any)[0].(map[string]any)["values"].([]any)
			if len(xs) != len(through) || len(vals) != len(through) {
				t.Fatalf("the chart has %d buckets, the API %d", len(xs), len(through))
			}
			for i, b := range through {
				b := b.(map[string]any)
				if vals[i] != b["merged"] {
					t.Errorf("bucket %v: chart %v, API %v", b["start"], vals[i], b["merged"])
				}
			}
			for table, key := range map[string]string{"by-author": "by_author", "by-project": "by_project", "slowest-open": "slowest_open"} {
				rows := api[key].([]any)
				if n := tableRows(doc, table); n != len(rows) && !(n == -1 && len(rows) == 0) {
					t.Errorf("%s: %d rows, the API %d", table, n, len(rows))
				}
			}
			for _, mr := range api["slowest_open"].([]any) {
				mr := mr.(map[string]any)
				if !strings.Contains(doc, `href="/events/`+mr["id"].(string)+`"`) || !strings.Contains(doc, `href="`+mr["web_url"].(string)+`"`) {
					t.Errorf("open %s is not linked to its page and to GitLab", mr["id"])
				}
			}
			localLinksResolve(t, ts.URL, doc)
		})
	}
	// The filters change what is shown.
	all := okPage(t, ts.URL+"/merge-requests?"+pagesWindow)
	bob := okPage(t, ts.URL+"/merge-requests?project=acme/api&"+pagesWindow)
	if a, b := figure(t, all, "mr-merged"), figure(t, bob, "mr-merged"); *a != 4 || *b != 2 {
		t.Errorf("merged: all %v, acme/api %v; want 4 and 2", *a, *b)
	}
	if n := len(chartData(t, okPage(t, ts.URL+"/merge-requests?bucket=day&"+pagesWindow), "mr-throughput-data")["x"].([]any)); n != 3 {
		t.Errorf("3 days by day: %d buckets", n)
	}
	if !strings.Contains(okPage(t, ts.URL+"/merge-requests?since=2026-01-01&until=2026-01-31"), `id="no-merges"`) {
		t.Error("a window without merges does not say so")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
}

// tableRows counts the body rows of the table id.
func tableRows(doc, id string) int {
	i := strings.Index(doc, `<table id="`+id+`"`)
	if i < 0 {
		return -1
	}
	t := doc[i:]
	t = t[:strings.Index(t, "</table>")]
	if j := strings.Index(t, "<tbody>"); j >= 0 {
		t = t[j:]
	}
	return strings.Count(html.UnescapeString(t), "<tr")
}
