package server_test

import (
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
)

// The deployments page lists DORA's production deployments (GET
// /api/v1/metrics/dora) per environment, each with what it shipped and
// the incidents after it; environment narrows it to one.
func TestDeploymentsPage(t *testing.T) {
	ts, st, logs := pagesSetup(t)
	// A second production environment in acme/sub/svc, with a deployment.
	if _, err := st.Upsert(t.Context(),
		ev(change.KindEnvironment, change.EnvironmentID(13, 2), 13, "available", dt(0), map[string]any{"name": "prod-eu", "tier": "production"}),
		ev(change.KindDeployment, change.DeploymentID(13, 2), 13, "success", dt(200), map[string]any{
			"iid": 2, "environment": "prod-eu", "status": "success", "finished_at": dt(200).Format("2006-01-02T15:04:05Z07:00")}),
	); err != nil {
		t.Fatal(err)
	}
	// Eleven merge requests more, which its first deployment ships besides
	// mr-13-1: twelve, more than a row names.
	for i := int64(10); i < 21; i++ {
		at := dt(150 + int(i))
		if _, err := st.Upsert(t.Context(), ev(change.KindMergeRequest, change.MergeRequestID(13, i), 13, "merged", at, map[string]any{
			"iid": i, "target_branch": "main", "merged_at": at.Format("2006-01-02T15:04:05Z07:00")})); err != nil {
			t.Fatal(err)
		}
	}
	for _, filter := range []string{"", "project=acme/api&", "group=acme&"} {
		t.Run(filter, func(t *testing.T) {
			doc := okPage(t, ts.URL+"/deployments?"+filter+pagesWindow)
			api, _ := asJSON(t, ts.URL, doc)
			sameFigure(t, "deployments", figure(t, doc, "dep-count"), apiFigure(t, api, "deployment_frequency.count"))
			sameFigure(t, "failed", figure(t, doc, "dep-failed"), apiFigure(t, api, "change_failure_rate.failed"))
			sameFigure(t, "changes", figure(t, doc, "dep-changes"), apiFigure(t, api, "lead_time.changes"))
			for _, d := range api["deployments"].([]any) {
				d := d.(map[string]any)
				id := d["id"].(string)
				row := doc[strings.Index(doc, `<tr id="dep-`+id+`"`):]
				if strings.Index(doc, `<tr id="dep-`+id+`"`) < 0 {
					t.Fatalf("deployment %s is not listed", id)
				}
				row = row[:strings.Index(row, "</tr>")]
				changes := d["changes"].([]any)
				if len(changes) > 10 {
					changes = changes[:10] // a row names ten
				}
				for _, c := range append(changes, d["incidents"].([]any)...) {
					if !strings.Contains(row, `href="/events/`+c.(string)+`"`) {
						t.Errorf("%s's row does not link %s", id, c)
					}
				}
				if !strings.Contains(doc[:strings.Index(doc, `<tr id="dep-`+id+`"`)], `data-environment="`+d["environment"].(string)+`"`) {
					t.Errorf("%s is not under its environment %s", id, d["environment"])
				}
			}
			localLinksResolve(t, ts.URL, doc)
		})
	}

	all := okPage(t, ts.URL+"/deployments?"+pagesWindow)
	if !strings.Contains(all, `data-environment="prod-eu"`) || !strings.Contains(all, `data-environment="production"`) {
		t.Error("not every environment has its section")
	}
	eu := okPage(t, ts.URL+"/deployments?environment=prod-eu&"+pagesWindow)
	if f := figure(t, eu, "dep-count"); *f != 1 {
		t.Errorf("prod-eu: %v deployments, want 1", *f)
	}
	if strings.Contains(eu, `data-environment="production"`) || !strings.Contains(eu, `<tr id="dep-deployment-13-2"`) {
		t.Error("environment=prod-eu shows other environments, or not its own")
	}
	row := eu[strings.Index(eu, `<tr id="dep-deployment-13-2"`):]
	row = row[:strings.Index(row, "</tr>")]
	if n := strings.Count(row, `href="/events/mr-`); n != 10 || !strings.Contains(row, "and 2 more") {
		t.Errorf("a deployment that shipped 12 merge requests names %d and says %q", n, row)
	}
	if !strings.Contains(eu, `aria-current="page">prod-eu</a>`) {
		t.Error("the environment asked for is not marked current")
	}
	none := okPage(t, ts.URL+"/deployments?project=other/tool&"+pagesWindow)
	if !strings.Contains(none, `id="no-deployments"`) || !strings.Contains(none, "LABTRAIL_PRODUCTION_ENVIRONMENTS") {
		t.Error("a project without production deployments does not say how to get them")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
}
