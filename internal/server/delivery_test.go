package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// dt is the delivery tests' clock: minute m after 2026-05-04T10:00Z (a
// Monday).
func dt(m int) time.Time {
	return time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
}

var deliveryProjects = []store.Project{
	{ID: 10, Path: "acme/web"}, {ID: 11, Path: "acme/api"}, {ID: 12, Path: "other/tool"}, {ID: 13, Path: "acme/sub/svc"},
}

func pathOf(id int64) string {
	for _, p := range deliveryProjects {
		if p.ID == id {
			return p.Path
		}
	}
	panic(id)
}

func ev(kind change.Kind, id string, project int64, state string, at time.Time, attrs map[string]any) change.Event {
	return change.Event{ID: id, Kind: kind, ProjectID: project, ProjectPath: pathOf(project), Title: id, State: state,
		Author: "alice", WebURL: "https://gitlab.example/" + id, Ref: "main", SHA: "abc1234",
		CreatedAt: at.Add(-time.Minute), UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll, Attrs: attrs}
}

// deliverySetup stores, in each project, a production environment and one
// successful production deployment at minute 60+project (10, 11, 13; 12 has
// none), a merge request merged into main before it, an incident after it in
// acme/web, and the changes GET /api/v1/changes/before picks from.
func deliverySetup(t *testing.T) (*httptest.Server, *sqlite.Store, *bytes.Buffer) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutProjects(t.Context(), deliveryProjects...); err != nil {
		t.Fatal(err)
	}
	var evs []change.Event
	for _, p := range []int64{10, 11, 13} {
		evs = append(evs,
			ev(change.KindEnvironment, change.EnvironmentID(p, 1), p, "available", dt(0), map[string]any{"name": "production", "tier": "production"}),
			ev(change.KindMergeRequest, change.MergeRequestID(p, 1), p, "merged", dt(30), map[string]any{
				"iid": 1, "target_branch": "main", "merged_at": dt(30).Format(time.RFC3339)}),
			ev(change.KindDeployment, change.DeploymentID(p, 1), p, "success", dt(60+int(p)), map[string]any{
				"iid": 1, "environment": "production", "status": "success", "finished_at": dt(60 + int(p)).Format(time.RFC3339)}),
		)
	}
	incident := ev(change.KindIssue, change.IssueID(10, 5), 10, "opened", dt(120), map[string]any{"iid": 5, "issue_type": "incident"})
	incident.CreatedAt = dt(120)
	evs = append(evs, incident,
		// What changes what runs, in acme/web, and what does not.
		ev(change.KindRelease, "release-10-v1.0", 10, "published", dt(100), nil),
		ev(change.KindTag, "tag-10-v1.0", 10, "tagged", dt(99), nil),
		ev(change.KindImage, "image-10-1-v1.0-sha256:"+strings.Repeat("ab", 32), 10, "pushed", dt(110), nil),
		ev(change.KindPipeline, change.PipelineID(10, 7), 10, "failed", dt(115), map[string]any{"status": "failed"}),
		ev(change.KindPipeline, change.PipelineID(10, 8), 10, "running", dt(116), map[string]any{"status": "running"}),
		ev(change.KindMergeRequest, change.MergeRequestID(10, 2), 10, "opened", dt(117), map[string]any{"iid": 2}),
		ev(change.KindCommit, change.CommitID(10, "abcdef1"), 10, "committed", dt(118), nil),
		ev(change.KindPipeline, change.PipelineID(10, 9), 10, "success", dt(120), map[string]any{"status": "success"}),
		ev(change.KindPipeline, change.PipelineID(10, 10), 10, "success", dt(121), map[string]any{"status": "success"}),
	)
	if _, err := st.Upsert(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	srv := server.New(st, slog.New(slog.NewTextHandler(&logs, nil)))
	srv.EnableMetrics(metrics.New(st, metrics.Config{}))
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, st, &logs
}

// window is a since/until pair around the stored history.
const window = "since=2026-05-04T00:00:00Z&until=2026-05-05T00:00:00Z"

// Bad parameters are 400 (unknown project or group 404) with a message
// saying what is wrong, and nothing is logged as a failure.
func TestMetricsParameterErrors(t *testing.T) {
	ts, _, logs := deliverySetup(t)
	for _, tc := range []struct {
		query string
		code  int
		msg   string
	}{
		{"/api/v1/metrics/dora?since=yesterday", 400, "since must be an RFC 3339 time"},
		{"/api/v1/metrics/dora?since=2026-05-05&until=2026-05-04", 400, "until must be after since"},
		{"/api/v1/metrics/dora?since=2026-05-04&until=2026-05-04", 400, "until must be after since"},
		{"/api/v1/metrics/dora?since=2199-01-01", 400, "must be before until"},
		{"/api/v1/metrics/dora?since=9999-01-01", 400, "outside the range labtrail stores"},
		{"/api/v1/metrics/merge-requests?bucket=year", 400, `bucket "year" is not one of day, week, month`},
		{"/api/v1/metrics/pipelines?projet=acme/web", 400, `unknown parameter "projet"`},
		{"/api/v1/metrics/dora?since=2026-05-01&since=2026-05-02", 400, "since is given more than once"},
		{"/api/v1/metrics/dora?since=1990-01-01&until=2026-01-01&bucket=day", 400, "buckets"},
		{"/api/v1/metrics/dora?project=nope/nope", 404, `unknown project "nope/nope"`},
		{"/api/v1/metrics/dora?group=nope", 404, `unknown group "nope"`},
		{"/api/v1/metrics/dora?group=acme/we", 404, `unknown group "acme/we"`},
		{"/api/v1/changes/before?window=forever", 400, "window must be a duration"},
		{"/api/v1/changes/before?window=-1h", 400, "window must be a duration"},
		{"/api/v1/changes/before?window=721h", 400, "at most 720h"},
		{"/api/v1/changes/before?at=2026-05-04T12:00:00Z&incident=issue-10-5", 400, "not both"},
		{"/api/v1/changes/before?incident=mr-10-1", 400, "incident must be an issue id"},
		{"/api/v1/changes/before?incident=issue-10-0", 400, "incident must be an issue id"},
		{"/api/v1/changes/before?incident=issue-10-99", 404, `unknown incident "issue-10-99"`},
		{"/api/v1/changes/before?incident=issue-10-5&project=acme/web", 400, "leave out project and group"},
		{"/api/v1/changes/before?at=0001-01-01T00:00:00Z", 400, "outside the range"},
		{"/api/v1/changes/before?at=1677-09-22T01:00:00Z", 400, "at minus window is outside the range"},
		{"/api/v1/changes/before?since=2026-01-01", 400, `unknown parameter "since"`},
		{"/api/v1/changes/before?project=12345", 404, `unknown project "12345"`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, m := get(t, ts.URL+tc.query)
			msg, _ := m["error"].(string)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %q, want %d with %q", code, msg, tc.code, tc.msg)
			}
		})
	}
	if strings.Contains(logs.String(), "request failed") {
		t.Fatalf("a bad parameter was logged as a failure:\n%s", logs)
	}
}

func deploymentsOf(t *testing.T, ts *httptest.Server, query string) []string {
	t.Helper()
	code, m := get(t, ts.URL+"/api/v1/metrics/dora?"+window+"&"+query)
	if code != 200 {
		t.Fatalf("%s: %d %v", query, code, m)
	}
	var ids []string
	for _, d := range m["deployments"].([]any) {
		ids = append(ids, d.(map[string]any)["id"].(string))
	}
	slices.Sort(ids)
	return ids
}

// project and group select projects: repeated, mixed, by id or path in any
// case; a group takes its subgroups' projects, not those whose path only
// starts with its name.
func TestMetricsSelectProjects(t *testing.T) {
	ts, _, _ := deliverySetup(t)
	d := change.DeploymentID
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{d(10, 1), d(11, 1), d(13, 1)}},
		{"group=acme", []string{d(10, 1), d(11, 1), d(13, 1)}},
		{"group=ACME/", []string{d(10, 1), d(11, 1), d(13, 1)}},
		{"group=acme/sub", []string{d(13, 1)}},
		{"group=other", nil},
		{"project=acme/web", []string{d(10, 1)}},
		{"project=11&project=ACME/WEB", []string{d(10, 1), d(11, 1)}},
		{"project=12&group=acme/sub", []string{d(13, 1)}},
		{"project=10&group=acme", []string{d(10, 1), d(11, 1), d(13, 1)}},
	} {
		if got := deploymentsOf(t, ts, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%q: deployments %v, want %v", tc.query, got, tc.want)
		}
	}
}

// Without since and until the window is the 30 days up to now; each
// endpoint answers the issue's field names.
func TestMetricsDefaultsAndShapes(t *testing.T) {
	ts, _, _ := deliverySetup(t)
	before := time.Now().UTC()
	code, m := get(t, ts.URL+"/api/v1/metrics/dora")
	after := time.Now().UTC()
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	since, _ := time.Parse(time.RFC3339Nano, m["since"].(string))
	until, _ := time.Parse(time.RFC3339Nano, m["until"].(string))
	if until.Before(before.Truncate(time.Second)) || until.After(after) || until.Sub(since) != 30*24*time.Hour || m["bucket"] != "week" {
		t.Fatalf("default window %v..%v bucket %v, want the 30 days up to now by week", since, until, m["bucket"])
	}
	for path, keys := range map[string][]string{
		"dora":           {"deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore", "deployments"},
		"merge-requests": {"merged", "coding", "pickup", "review", "deploy", "cycle", "throughput", "size", "by_author", "by_project", "slowest_open"},
		"pipelines":      {"pipelines", "success_rate", "duration", "queued", "by_ref", "failing_jobs", "flaky_jobs", "failures_by_stage", "failures_by_reason"},
	} {
		code, m := get(t, ts.URL+"/api/v1/metrics/"+path+"?"+window+"&bucket=day")
		if code != 200 {
			t.Fatalf("%s: %d %v", path, code, m)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q in %v", path, k, m)
			}
		}
	}
	// The stored figures: three production deployments, each shipping its
	// project's merge request; acme/web's followed by an incident.
	_, m = get(t, ts.URL+"/api/v1/metrics/dora?"+window)
	df := m["deployment_frequency"].(map[string]any)
	cfr := m["change_failure_rate"].(map[string]any)
	if df["count"] != 3.0 || df["per_day"] != 3.0 || cfr["failed"] != 1.0 || cfr["deployments"] != 3.0 {
		t.Fatalf("figures: frequency %v, failure rate %v", df, cfr)
	}
	if lt := m["lead_time"].(map[string]any); lt["changes"] != 3.0 {
		t.Fatalf("lead time: %v", lt)
	}
}

func TestMetricsNotEnabled(t *testing.T) {
	_, st, _ := deliverySetup(t)
	ts := httptest.NewServer(server.New(st, nil))
	t.Cleanup(ts.Close)
	code, m := get(t, ts.URL+"/api/v1/metrics/dora")
	if code != 404 || !strings.Contains(fmt.Sprint(m["error"]), "not set up") {
		t.Fatalf("got %d %v", code, m)
	}
}

func changeIDs(t *testing.T, ts *httptest.Server, query string) (map[string]any, []string) {
	t.Helper()
	code, m := get(t, ts.URL+"/api/v1/changes/before?"+query)
	if code != 200 {
		t.Fatalf("%s: %d %v", query, code, m)
	}
	var ids []string
	for _, e := range m["changes"].([]any) {
		ids = append(ids, e.(map[string]any)["id"].(string))
	}
	return m, ids
}

// What changed before a moment: the kinds that change what runs, merged
// merge requests and finished pipelines only, at inclusive, newest first;
// or before an incident was opened, in its project.
func TestChangesBefore(t *testing.T) {
	ts, _, _ := deliverySetup(t)
	at := url.QueryEscape(dt(120).Format(time.RFC3339))
	m, got := changeIDs(t, ts, "at="+at+"&window=1h&project=acme/web")
	want := []string{change.PipelineID(10, 9), change.PipelineID(10, 7), "image-10-1-v1.0-sha256:" + strings.Repeat("ab", 32),
		"release-10-v1.0", "tag-10-v1.0", change.DeploymentID(10, 1)}
	if !slices.Equal(got, want) {
		t.Fatalf("changes:\n got %v\nwant %v", got, want)
	}
	if m["window_seconds"] != 3600.0 || m["at"] != dt(120).Format(time.RFC3339) {
		t.Fatalf("header: %v", m)
	}
	// The window's start is inclusive too: the deployment at minute 70.
	if _, got = changeIDs(t, ts, "at="+at+"&window=50m&project=10"); !slices.Contains(got, change.DeploymentID(10, 1)) {
		t.Fatalf("window start not inclusive: %v", got)
	}
	if _, got = changeIDs(t, ts, "at="+at+"&window=49m&project=10"); slices.Contains(got, change.DeploymentID(10, 1)) {
		t.Fatalf("before the window: %v", got)
	}
	// Every project, the default window of 6h: the merged merge requests
	// and the other projects' deployments too.
	_, got = changeIDs(t, ts, "at="+at)
	for _, id := range []string{change.MergeRequestID(11, 1), change.DeploymentID(13, 1), change.EnvironmentID(10, 1)} {
		if !slices.Contains(got, id) {
			t.Errorf("every project: %s missing from %v", id, got)
		}
	}
	for _, id := range []string{change.MergeRequestID(10, 2), change.PipelineID(10, 8), change.CommitID(10, "abcdef1"), change.PipelineID(10, 10)} {
		if slices.Contains(got, id) {
			t.Errorf("%s is not a change of what runs before %s: %v", id, at, got)
		}
	}
	m, byIncident := changeIDs(t, ts, "incident=issue-10-5&window=1h")
	if !slices.Equal(byIncident, want) || m["incident"] != "issue-10-5" {
		t.Fatalf("before the incident: %v %v", m["incident"], byIncident)
	}
}

// The DORA gauges are each active project's figures over 30 days, a project
// without deployments showing no lead time rather than 0.
func TestDORAGauges(t *testing.T) {
	_, st, _ := deliverySetup(t)
	tel := server.NewTelemetry(st, nil)
	srv := server.New(st, nil)
	srv.EnableTelemetry(tel)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	if err := tel.RefreshDORA(t.Context(), metrics.New(st, metrics.Config{}), dt(24*60)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, line := range []string{
		`labtrail_dora_deployments{project="acme/web"} 1`,
		`labtrail_dora_deployments{project="other/tool"} 0`,
		`labtrail_dora_change_failure_rate{project="acme/web"} 1`,
		`labtrail_dora_change_failure_rate{project="acme/api"} 0`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("no %q in the scrape", line)
		}
	}
	for _, absent := range []string{`labtrail_dora_lead_time_median_seconds{project="other/tool"}`,
		`labtrail_dora_time_to_restore_median_seconds{project="acme/web"}`} {
		if strings.Contains(text, absent) {
			t.Errorf("%s is in the scrape though it has no data", absent)
		}
	}
}
