package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/metrics"
)

// until closes a two-week window: the weeks of 2 and 9 March 2026.
var until = h(14 * 24)

// deliveryWorld is two projects over the window [since, until), hours
// relative to since:
//
//	project 1 (g/app): production (tier), staging
//	  deployments 101 prod h-48 (before: the previous one), 102 prod h0
//	  (exactly at since), 103 staging h22, 104 prod h24, 105 prod h48,
//	  106 prod FAILED h60, 107 prod at until (after: the next one)
//	  MRs 1 main merged h-72 (shipped by 101), 2 main h-24 (102), 3 develop
//	  h5 (another branch: never shipped), 4 main h10 and 5 main h20 (104),
//	  6 main h90 (107, after the window); 7 open, 8 closed
//	  issues 1 incident h-30 (before the window), 2 incident h30 closed
//	  h32 (104 failed), 3 labelled "Incident" h50 never closed (105
//	  failed), 4 a bug h26, 5 incident at until+48h (after 107: no
//	  link), 6 incident h48 exactly when 105 finished (104's, not 105's)
//	project 2 (g/svc): production (tier)
//	  deployment 201 prod h200 (the project's first)
//	  MR 1 main merged h190 (201); 2 open
//	  issues 1 incident h1 closed h1.5 (before any deployment), 2
//	  incident h250 closed h260 (201 failed: no next deployment)
func deliveryWorld() *world {
	w := &world{}
	w.env(1, 11, "production", "production")
	w.env(1, 12, "staging", "staging")
	w.env(2, 21, "production", "production")

	w.deploy(1, 101, "production", "success", "main", h(-48))
	w.deploy(1, 102, "production", "success", "main", h(0))
	w.deploy(1, 103, "staging", "success", "main", h(22))
	w.deploy(1, 104, "production", "success", "main", h(24))
	w.deploy(1, 105, "production", "success", "main", h(48))
	w.deploy(1, 106, "production", "failed", "main", h(60))
	w.deploy(1, 107, "production", "success", "main", until)
	w.deploy(2, 201, "production", "success", "main", h(200))

	w.mr(mrSpec{project: 1, iid: 1, author: "ann", target: "main", created: h(-90), firstAt: h(-100), merged: h(-72)})
	w.mr(mrSpec{project: 1, iid: 2, author: "bob", target: "main", created: h(-30), firstAt: h(-40), merged: h(-24)})
	w.mr(mrSpec{project: 1, iid: 3, author: "ann", target: "develop", created: h(1), firstAt: h(-5), merged: h(5),
		approvals: []approval{{"bob", h(3)}}, adds: 10, dels: 5, files: 2})
	w.note(1, 31, 3, "bob", h(4), false)
	w.mr(mrSpec{project: 1, iid: 4, author: "bob", target: "main", created: h(2), merged: h(10),
		adds: 100, dels: 20, files: 5})
	w.note(1, 41, 4, "bob", h(3), false) // the author's own: not a review
	w.note(1, 42, 4, "ann", h(6), true)  // a system note: not a review
	w.note(1, 43, 4, "cat", h(8), false)
	w.mr(mrSpec{project: 1, iid: 5, author: "ann", target: "main", created: h(15), firstAt: h(12), merged: h(20),
		approvals: []approval{{"cat", h(16)}}, adds: 1, dels: 1, files: 1})
	w.note(1, 51, 5, "bob", h(19), false)
	w.mr(mrSpec{project: 1, iid: 6, author: "ann", target: "main", created: h(80), firstAt: h(70), merged: h(90),
		adds: 40, files: 3})
	w.note(1, 61, 6, "bob", h(95), false) // after the merge: reviewed nothing
	w.mr(mrSpec{project: 1, iid: 7, author: "bob", target: "main", created: h(-100)})
	w.mr(mrSpec{project: 1, iid: 8, author: "bob", target: "main", created: h(-200), state: "closed"})
	w.mr(mrSpec{project: 2, iid: 1, author: "dan", target: "main", created: h(185), firstAt: h(180), merged: h(190),
		approvals: []approval{{"ann", h(186)}}, adds: 7, dels: 3, files: 1})
	w.mr(mrSpec{project: 2, iid: 2, author: "ann", target: "main", created: h(300)})

	none := time.Time{}
	w.issue(1, 1, "incident", nil, h(-30), h(-29))
	w.issue(1, 2, "incident", nil, h(30), h(32))
	w.issue(1, 3, "issue", []string{"Incident"}, h(50), none)
	w.issue(1, 4, "issue", []string{"bug"}, h(26), h(27))
	w.issue(1, 5, "incident", nil, until.Add(48*time.Hour), until.Add(54*time.Hour))
	w.issue(1, 6, "incident", nil, h(48), none)
	w.issue(2, 1, "incident", nil, h(1), h(1.5))
	w.issue(2, 2, "incident", []string{"sev2"}, h(250), h(260))
	return w
}

func TestDORA(t *testing.T) {
	ctx := context.Background()
	m := metrics.New(deliveryWorld().store(t), metrics.Config{})
	got, err := m.DORA(ctx, metrics.Query{Since: since, Until: until, Bucket: metrics.BucketWeek})
	if err != nil {
		t.Fatal(err)
	}
	week2 := since.AddDate(0, 0, 7)
	// Lead times (deployment finished minus first commit, or created when
	// unknown) and merge-to-deploy, per shipped change:
	//   mr-1-2 by 102: 0-(-40) = 40h = 144000; 0-(-24) = 24h = 86400
	//   mr-1-4 by 104: 24-2 (created) = 22h = 79200; 24-10 = 14h = 50400
	//   mr-1-5 by 104: 24-12 = 12h = 43200; 24-20 = 4h = 14400
	//   mr-2-1 by 201: 200-180 = 20h = 72000; 200-190 = 10h = 36000
	// sorted 43200 72000 79200 144000: median 75600, p75 (3rd) 79200, p90
	// (ceil 3.6 = 4th) 144000; merge-to-deploy median (36000+50400)/2.
	// Restore: 2-2 2h = 7200, 2-1 0.5h = 1800, 2-2 10h = 36000 (1-3 and
	// 1-6 never closed): median 7200, p90 (3rd) 36000.
	want := metrics.DORA{
		Since: since, Until: until, Bucket: metrics.BucketWeek,
		DeploymentFrequency: metrics.DeploymentFrequency{Count: 4, PerDay: f(4.0 / 14), Level: metrics.LevelHigh,
			Buckets: []metrics.CountBucket{{Start: since, Count: 3}, {Start: week2, Count: 1}}},
		LeadTime: metrics.LeadTime{Changes: 4, MedianSeconds: f(75600), P75Seconds: f(79200), P90Seconds: f(144000),
			MergeToDeployMedianSeconds: f(43200), Level: metrics.LevelElite,
			Buckets: []metrics.LeadTimeBucket{
				{Start: since, Changes: 3, MedianSeconds: f(79200)},
				{Start: week2, Changes: 1, MedianSeconds: f(72000)},
			}},
		ChangeFailureRate: metrics.ChangeFailureRate{Deployments: 4, Failed: 3, Rate: f(0.75), Level: metrics.LevelLow},
		TimeToRestore: metrics.TimeToRestore{Incidents: 5, Restored: 3, MedianSeconds: f(7200), P90Seconds: f(36000),
			Level: metrics.LevelHigh},
		Deployments: []metrics.Deployment{
			{ID: "deployment-2-201", ProjectID: 2, ProjectPath: "g/svc", Environment: "production", Ref: "main",
				SHA: "abc0000t", FinishedAt: h(200), Changes: []string{"mr-2-1"}, Incidents: []string{"issue-2-2"}, Failed: true},
			{ID: "deployment-1-105", ProjectID: 1, ProjectPath: "g/app", Environment: "production", Ref: "main",
				SHA: "abc0000b", FinishedAt: h(48), Changes: []string{}, Incidents: []string{"issue-1-3"}, Failed: true},
			{ID: "deployment-1-104", ProjectID: 1, ProjectPath: "g/app", Environment: "production", Ref: "main",
				SHA: "abc0000a", FinishedAt: h(24), Changes: []string{"mr-1-4", "mr-1-5"},
				Incidents: []string{"issue-1-2", "issue-1-6"}, Failed: true},
			{ID: "deployment-1-102", ProjectID: 1, ProjectPath: "g/app", Environment: "production", Ref: "main",
				SHA: "abc0000y", FinishedAt: h(0), Changes: []string{"mr-1-2"}, Incidents: []string{}},
		},
	}
	sameJSON(t, got, want)

	// One project: project 2 alone. 1 deployment in 14 days is medium
	// (>= 1/30), its one change 20h elite, 1 of 1 failed, restores
	// 1800 and 36000: median 18900, high.
	got, err = m.DORA(ctx, metrics.Query{ProjectIDs: []int64{2}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	df, lt, cfr, ttr := got.DeploymentFrequency, got.LeadTime, got.ChangeFailureRate, got.TimeToRestore
	if df.Count != 1 || *df.PerDay != 1.0/14 || df.Level != metrics.LevelMedium {
		t.Errorf("project 2 frequency = %+v", df)
	}
	if lt.Changes != 1 || *lt.MedianSeconds != 72000 || lt.Level != metrics.LevelElite {
		t.Errorf("project 2 lead time = %+v", lt)
	}
	if cfr.Deployments != 1 || cfr.Failed != 1 || *cfr.Rate != 1 || cfr.Level != metrics.LevelLow {
		t.Errorf("project 2 change failure rate = %+v", cfr)
	}
	if ttr.Incidents != 2 || ttr.Restored != 2 || *ttr.MedianSeconds != 18900 || ttr.Level != metrics.LevelHigh {
		t.Errorf("project 2 time to restore = %+v", ttr)
	}
	if len(got.Deployments) != 1 || got.Deployments[0].ID != "deployment-2-201" {
		t.Errorf("project 2 deployments = %+v", got.Deployments)
	}
}

// TestDORAWindowEdges moves the window so that its edges fall exactly on
// deployments: since is inclusive, until exclusive.
func TestDORAWindowEdges(t *testing.T) {
	ctx := context.Background()
	m := metrics.New(deliveryWorld().store(t), metrics.Config{})
	ids := func(q metrics.Query) []string {
		t.Helper()
		d, err := m.DORA(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, dep := range d.Deployments {
			out = append(out, dep.ID)
		}
		return out
	}
	// [h24, h48): 104 only (105 finishes at until); 104 still shipped
	// 4 and 5, measured from 102 before the window.
	if got := ids(metrics.Query{ProjectIDs: []int64{1}, Since: h(24), Until: h(48)}); len(got) != 1 || got[0] != "deployment-1-104" {
		t.Errorf("[h24, h48) deployments = %v", got)
	}
	d, err := m.DORA(ctx, metrics.Query{ProjectIDs: []int64{1}, Since: h(24), Until: h(48)})
	if err != nil {
		t.Fatal(err)
	}
	if dep := d.Deployments[0]; len(dep.Changes) != 2 || len(dep.Incidents) != 2 {
		t.Errorf("104 in [h24, h48) = %+v", dep)
	}
	// [h48, until+1ns): 105 and 107. 105's next is 107, so issue 1-5
	// (opened 48h after 107) is 107's: it has no next deployment.
	d, err = m.DORA(ctx, metrics.Query{ProjectIDs: []int64{1}, Since: h(48), Until: until.Add(time.Nanosecond)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Deployments) != 2 || d.Deployments[0].ID != "deployment-1-107" ||
		len(d.Deployments[0].Incidents) != 1 || d.Deployments[0].Incidents[0] != "issue-1-5" ||
		len(d.Deployments[0].Changes) != 1 || d.Deployments[0].Changes[0] != "mr-1-6" {
		t.Errorf("[h48, until] deployments = %+v", d.Deployments)
	}
}

// TestDORATimeZones: a window given in another zone is the same window,
// and the answer is in UTC.
func TestDORATimeZones(t *testing.T) {
	ctx := context.Background()
	m := metrics.New(deliveryWorld().store(t), metrics.Config{})
	utc, err := m.DORA(ctx, metrics.Query{Since: since, Until: until, Bucket: metrics.BucketDay})
	if err != nil {
		t.Fatal(err)
	}
	zone := time.FixedZone("UTC+5", 5*3600)
	zoned, err := m.DORA(ctx, metrics.Query{Since: since.In(zone), Until: until.In(zone), Bucket: metrics.BucketDay})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, zoned, utc)
	obj := jsonObject(t, zoned)
	if obj["since"] != "2026-03-02T00:00:00Z" {
		t.Errorf("since = %v", obj["since"])
	}
	if n := len(zoned.DeploymentFrequency.Buckets); n != 14 {
		t.Errorf("%d day buckets in 14 days", n)
	}
}

// TestDORANoDeployments: with no production deployment (a staging one
// only), every figure and level is null, the buckets are there with 0, and
// incidents still count for time to restore.
func TestDORANoDeployments(t *testing.T) {
	w := &world{}
	w.env(1, 11, "staging", "staging")
	w.deploy(1, 1, "staging", "success", "main", h(5))
	w.mr(mrSpec{project: 1, iid: 1, author: "ann", target: "main", created: h(1), merged: h(2)})
	w.issue(1, 1, "incident", nil, h(3), time.Time{})
	m := metrics.New(w.store(t), metrics.Config{})
	got, err := m.DORA(context.Background(), metrics.Query{Since: since, Until: h(24 * 31), Bucket: metrics.BucketMonth})
	if err != nil {
		t.Fatal(err)
	}
	obj := jsonObject(t, got)
	df := obj["deployment_frequency"].(map[string]any)
	lt := obj["lead_time"].(map[string]any)
	cfr := obj["change_failure_rate"].(map[string]any)
	ttr := obj["time_to_restore"].(map[string]any)
	for _, c := range []struct {
		obj map[string]any
		key string
	}{
		{df, "per_day"}, {df, "level"}, {lt, "median_seconds"}, {lt, "p90_seconds"},
		{lt, "merge_to_deploy_median_seconds"}, {lt, "level"}, {cfr, "rate"}, {cfr, "level"},
		{ttr, "median_seconds"}, {ttr, "level"},
	} {
		if v, ok := c.obj[c.key]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", c.key, v, ok)
		}
	}
	if df["count"] != 0.0 || lt["changes"] != 0.0 || cfr["deployments"] != 0.0 || ttr["incidents"] != 1.0 || ttr["restored"] != 0.0 {
		t.Errorf("counts: %v %v %v %v", df, lt, cfr, ttr)
	}
	if deps, ok := obj["deployments"].([]any); !ok || len(deps) != 0 {
		t.Errorf("deployments = %#v, want []", obj["deployments"])
	}
	// March 2026 from the 2nd and the first days of April: two months.
	buckets := df["buckets"].([]any)
	if len(buckets) != 2 || buckets[0].(map[string]any)["start"] != "2026-03-01T00:00:00Z" ||
		buckets[1].(map[string]any)["start"] != "2026-04-01T00:00:00Z" || buckets[0].(map[string]any)["count"] != 0.0 {
		t.Errorf("buckets = %v", buckets)
	}
	if b := lt["buckets"].([]any); len(b) != 2 || b[0].(map[string]any)["median_seconds"] != nil {
		t.Errorf("lead time buckets = %v", b)
	}
}

// TestDORAEnvironmentsAndLabels: production by glob, two production
// environments, an environment's first deployment ever, and configured
// incident labels.
func TestDORAEnvironmentsAndLabels(t *testing.T) {
	w := &world{}
	w.env(3, 31, "prod-us", "")              // production by glob only
	w.env(3, 32, "preview/x", "development") // not production
	w.mr(mrSpec{project: 3, iid: 1, author: "ann", target: "main", created: h(-15), firstAt: h(-20), merged: h(-10)})
	w.mr(mrSpec{project: 3, iid: 2, author: "ann", target: "main", created: h(4.5), firstAt: h(4), merged: h(5)})
	w.deploy(3, 1, "prod-us", "success", "main", h(-5))        // ships 3-1, before the window
	w.deploy(3, 2, "prod-eu", "success", "main", h(6))         // prod-eu's first: ships 3-1 and 3-2
	w.deploy(3, 3, "preview/x", "success", "main", h(7))       // not production
	w.deploy(3, 4, "prod-us", "success", "main", h(30))        // ships 3-2 (merged after 3-1's deploy)
	w.issue(3, 1, "issue", []string{"incident"}, h(10), h(11)) // not an incident: the labels are configured
	w.issue(3, 2, "issue", []string{"SEV1"}, h(40), h(42))
	w.issue(3, 3, "incident", nil, h(-1), h(0.5)) // before every deployment of the window

	m := metrics.New(w.store(t), metrics.Config{ProductionEnvironments: []string{"prod-*"}, IncidentLabels: []string{"sev1"}})
	got, err := m.DORA(context.Background(), metrics.Query{Since: since, Until: h(7 * 24), Bucket: metrics.BucketDay})
	if err != nil {
		t.Fatal(err)
	}
	// Each change once, at its earliest production deployment of the
	// window (3-2 at h6): 3-1 6-(-20) = 26h = 93600, 3-2 6-4 = 2h = 7200;
	// median 50400; merge to deploy 16h and 1h: median 30600.
	lt := got.LeadTime
	if lt.Changes != 2 || *lt.MedianSeconds != 50400 || *lt.MergeToDeployMedianSeconds != 30600 || *lt.P90Seconds != 93600 {
		t.Errorf("lead time = %+v", lt)
	}
	if len(got.Deployments) != 2 {
		t.Fatalf("deployments = %+v", got.Deployments)
	}
	us, eu := got.Deployments[0], got.Deployments[1]
	if us.ID != "deployment-3-4" || len(us.Changes) != 1 || us.Changes[0] != "mr-3-2" ||
		len(us.Incidents) != 1 || us.Incidents[0] != "issue-3-2" {
		t.Errorf("prod-us = %+v", us)
	}
	// prod-eu's next production deployment of the project is prod-us's at
	// h30; issue 3-1 is not an incident under these labels.
	if eu.ID != "deployment-3-2" || len(eu.Changes) != 2 || eu.Changes[0] != "mr-3-1" || eu.Changes[1] != "mr-3-2" ||
		len(eu.Incidents) != 0 {
		t.Errorf("prod-eu = %+v", eu)
	}
	if c := got.ChangeFailureRate; c.Deployments != 2 || c.Failed != 1 || *c.Rate != 0.5 {
		t.Errorf("change failure rate = %+v", c)
	}
	// Restore: 3-3 opened before since is out; 3-2 2h.
	if r := got.TimeToRestore; r.Incidents != 1 || r.Restored != 1 || *r.MedianSeconds != 7200 {
		t.Errorf("time to restore = %+v", r)
	}
	var counts []int
	for _, b := range got.DeploymentFrequency.Buckets {
		counts = append(counts, b.Count)
	}
	if len(counts) != 7 || counts[0] != 1 || counts[1] != 1 || counts[2]+counts[3]+counts[4]+counts[5]+counts[6] != 0 {
		t.Errorf("daily deployments = %v", counts)
	}
}

func TestQueryErrors(t *testing.T) {
	m := metrics.New(deliveryWorld().store(t), metrics.Config{})
	ctx := context.Background()
	for _, q := range []metrics.Query{
		{Since: until, Until: since},
		{Since: since, Until: since},
		{Until: until},
		{Since: since, Until: until, Bucket: "year"},
		{Since: since, Until: since.AddDate(20, 0, 0), Bucket: metrics.BucketDay},
	} {
		if _, err := m.DORA(ctx, q); !errors.Is(err, metrics.ErrInvalidQuery) {
			t.Errorf("DORA(%+v) = %v, want ErrInvalidQuery", q, err)
		}
		if _, err := m.MergeRequests(ctx, q); !errors.Is(err, metrics.ErrInvalidQuery) {
			t.Errorf("MergeRequests(%+v) = %v, want ErrInvalidQuery", q, err)
		}
		if _, err := m.Pipelines(ctx, q); !errors.Is(err, metrics.ErrInvalidQuery) {
			t.Errorf("Pipelines(%+v) = %v, want ErrInvalidQuery", q, err)
		}
	}
	if err := (metrics.Config{ProductionEnvironments: []string{"prod-["}}).Validate(); err == nil {
		t.Error("a bad glob validated")
	}
}

// TestDORAFrequencyThresholds: a rate exactly on a threshold, as counted
// over a window, gets the higher level: 4 in 28 days is once a week, 1 in
// 30 days once a month.
func TestDORAFrequencyThresholds(t *testing.T) {
	w := &world{}
	w.env(1, 11, "production", "production")
	for i := range 4 {
		w.deploy(1, int64(i+1), "production", "success", "main", h(float64(i*24*7+1)))
	}
	m := metrics.New(w.store(t), metrics.Config{})
	for _, tc := range []struct {
		days  int
		count int
		level metrics.Level
	}{{28, 4, metrics.LevelHigh}, {29, 4, metrics.LevelMedium}} {
		got, err := m.DORA(context.Background(), metrics.Query{Since: since, Until: h(float64(tc.days * 24))})
		if err != nil {
			t.Fatal(err)
		}
		if df := got.DeploymentFrequency; df.Count != tc.count || df.Level != tc.level {
			t.Errorf("%d days: %+v, level %s", tc.days, df, df.Level)
		}
	}
	got, err := m.DORA(context.Background(), metrics.Query{Since: h(-24*30 + 1.5), Until: h(1.5)})
	if err != nil {
		t.Fatal(err)
	}
	if df := got.DeploymentFrequency; df.Count != 1 || *df.PerDay != 1.0/30 || df.Level != metrics.LevelMedium {
		t.Errorf("1 in 30 days: %+v", df)
	}
}

// TestDORAJSONNames checks the answer's names against the issue's example.
func TestDORAJSONNames(t *testing.T) {
	m := metrics.New(deliveryWorld().store(t), metrics.Config{})
	got, err := m.DORA(context.Background(), metrics.Query{Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	obj := jsonObject(t, got)
	has := func(o map[string]any, where string, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := o[k]; !ok {
				t.Errorf("%s has no %q", where, k)
			}
		}
	}
	has(obj, "answer", "since", "until", "bucket", "deployment_frequency", "lead_time", "change_failure_rate",
		"time_to_restore", "deployments")
	df := obj["deployment_frequency"].(map[string]any)
	has(df, "deployment_frequency", "count", "per_day", "level", "buckets")
	has(df["buckets"].([]any)[0].(map[string]any), "deployment_frequency.buckets", "start", "count")
	lt := obj["lead_time"].(map[string]any)
	has(lt, "lead_time", "changes", "median_seconds", "p90_seconds", "merge_to_deploy_median_seconds", "level", "buckets")
	has(lt["buckets"].([]any)[0].(map[string]any), "lead_time.buckets", "start", "median_seconds")
	has(obj["change_failure_rate"].(map[string]any), "change_failure_rate", "deployments", "failed", "rate", "level")
	has(obj["time_to_restore"].(map[string]any), "time_to_restore", "incidents", "restored", "median_seconds", "level")
	has(obj["deployments"].([]any)[0].(map[string]any), "deployments", "id", "project_path", "environment", "ref",
		"sha", "finished_at", "changes", "incidents")
	if obj["bucket"] != "week" || obj["until"] != "2026-03-16T00:00:00Z" {
		t.Errorf("bucket %v, until %v", obj["bucket"], obj["until"])
	}
}
