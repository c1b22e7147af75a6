package server_test

import (
	"strings"
	"testing"
)

// The pipelines page's figures are GET /api/v1/metrics/pipelines's for the
// same filter, its charts the API's series.
func TestPipelinesPageFiguresAreTheAPIs(t *testing.T) {
	ts, _, logs := pagesSetup(t)
	for _, filter := range []string{"", "project=acme/api&", "project=acme/web&bucket=day&", "bucket=day&"} {
		t.Run(filter, func(t *testing.T) {
			doc := okPage(t, ts.URL+"/pipelines?"+filter+pagesWindow)
			api, _ := asJSON(t, ts.URL, doc)
			for id, path := range map[string]string{
				"pl-count": "pipelines", "pl-success-rate": "success_rate", "pl-duration-median": "duration.median_seconds",
				"pl-duration-p90": "duration.p90_seconds", "pl-queued-median": "queued.median_seconds",
			} {
				sameFigure(t, id, figure(t, doc, id), apiFigure(t, api, path))
			}
			for status, n := range api["statuses"].(map[string]any) {
				v := n.(float64)
				sameFigure(t, status, figure(t, doc, "pl-status-"+status), &v)
			}
			series := api["series"].([]any)
			for chart, key := range map[string]string{"pl-rate-data": "success_rate", "pl-duration-data": "duration_median_seconds"} {
				vals := chartData(t, doc, chart)["series"].([]any)[0].(map[string]any)["values"].([]any)
				if len(vals) != len(series) {
					t.Fatalf("%s: %d buckets, the API %d", chart, len(vals), len(series))
				}
				for i, b := range series {
					if want := b.(map[string]any)[key]; vals[i] != want {
						t.Errorf("%s bucket %d: chart %v, API %v", chart, i, vals[i], want)
					}
				}
			}
			for table, key := range map[string]string{"failing-jobs": "failing_jobs", "flaky-jobs": "flaky_jobs",
				"failures-by-stage": "failures_by_stage", "failures-by-reason": "failures_by_reason", "by-ref": "by_ref"} {
				rows := api[key].([]any)
				n := tableRows(doc, table)
				if len(rows) == 0 && n <= 1 {
					continue // an empty state, or a row saying there is none
				}
				if n != len(rows) {
					t.Errorf("%s: %d rows, the API %d", table, n, len(rows))
				}
			}
			localLinksResolve(t, ts.URL, doc)
		})
	}
	all := okPage(t, ts.URL+"/pipelines?"+pagesWindow)
	web := okPage(t, ts.URL+"/pipelines?project=acme/web&"+pagesWindow)
	if a, w := figure(t, all, "pl-count"), figure(t, web, "pl-count"); *a != 7 || *w != 4 {
		t.Errorf("pipelines: all %v, acme/web %v; want 7 and 4", *a, *w)
	}
	if !strings.Contains(all, "<th scope=\"row\">test</th>") || !strings.Contains(all, `id="flaky-jobs"`) {
		t.Error("the flaky test job is not listed")
	}
	if !strings.Contains(okPage(t, ts.URL+"/pipelines?since=2026-01-01&until=2026-01-31"), `id="no-pipelines"`) {
		t.Error("a window without pipelines does not say so")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
}
