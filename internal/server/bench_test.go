package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// benchEvents is how many events the listing benchmarks store: a year of a
// busy group's history (20 projects, one event every 5 minutes).
const benchEvents = 100_000

var benchStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// benchKinds weights kinds roughly as a busy group produces them: jobs
// most, then pipelines and commits, MRs and notes, the rest.
var benchKinds = []change.Kind{
	change.KindJob, change.KindJob, change.KindJob, change.KindJob, change.KindJob, change.KindJob,
	change.KindPipeline, change.KindPipeline, change.KindCommit, change.KindCommit,
	change.KindMergeRequest, change.KindMergeRequest, change.KindNote, change.KindNote,
	change.KindIssue, change.KindDeployment,
}

func benchEvent(i int) change.Event {
	kind := benchKinds[i%len(benchKinds)]
	project := int64(1 + (i*7)%20)
	n := int64(i)
	var id string
	switch kind {
	case change.KindJob:
		id = change.JobID(project, n)
	case change.KindPipeline:
		id = change.PipelineID(project, n)
	case change.KindCommit:
		id = change.CommitID(project, fmt.Sprintf("%040x", i))
	case change.KindMergeRequest:
		id = change.MergeRequestID(project, n)
	case change.KindNote:
		id = change.NoteID(project, n)
	case change.KindIssue:
		id = change.IssueID(project, n)
	default:
		id = change.DeploymentID(project, n)
	}
	at := benchStart.Add(time.Duration(i) * 5 * time.Minute)
	return change.Event{
		ID: id, Kind: kind, ProjectID: project, ProjectPath: fmt.Sprintf("acme/service-%d", project),
		Title: fmt.Sprintf("Fix flaky retry in the payment webhook handler (%d)", i), State: "success",
		Author: fmt.Sprintf("dev%d", i%37), WebURL: fmt.Sprintf("https://gitlab.example.com/acme/service-%d/-/jobs/%d", project, i),
		Ref: "main", SHA: fmt.Sprintf("%040x", i), CreatedAt: at.Add(-3 * time.Minute), UpdatedAt: at, OccurredAt: at,
		Source: change.SourcePoll,
		Attrs: map[string]any{
			"iid": n, "status": "success", "stage": "test", "name": "unit-tests", "duration": 181.5,
			"queued_duration": 2.25, "pipeline_id": n / 6, "labels": []string{"backend", "payments"},
			"user": map[string]any{"id": i % 37, "username": fmt.Sprintf("dev%d", i%37)},
		},
		Transitions: []change.Transition{{State: "created", At: at.Add(-3 * time.Minute)}, {State: "success", At: at}},
	}
}

// seedEvents stores benchEvents events in st, 1,000 per Upsert, and their
// 20 projects (a project filter must name a known project).
func seedEvents(b *testing.B, st store.Store) {
	const batch = 1000
	for p := int64(1); p <= 20; p++ {
		if err := st.PutProjects(b.Context(), store.Project{ID: p, Path: fmt.Sprintf("acme/service-%d", p)}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < benchEvents; i += batch {
		es := make([]change.Event, batch)
		for j := range es {
			es[j] = benchEvent(i + j)
		}
		if _, err := st.Upsert(b.Context(), es...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventsAPI measures GET /api/v1/events over real HTTP on
// loopback, on each backend holding 100,000 events, with the filters the
// dashboard and API clients use. Each op fetches one page of 100 and
// follows next_cursor, as a client walks the listing, starting over at the
// end; ns/op is per request.
func BenchmarkEventsAPI(b *testing.B) {
	window := benchStart.Add(200 * 24 * time.Hour)
	filters := []struct {
		name  string
		query url.Values
	}{
		{"kind", url.Values{"kind": {"pipeline"}}},
		{"kind+project", url.Values{"kind": {"job"}, "project": {"acme/service-7"}}},
		{"kind+project+time", url.Values{"kind": {"job"}, "project": {"7"},
			"since": {window.Format(time.RFC3339)}, "until": {window.Add(30 * 24 * time.Hour).Format(time.RFC3339)}}},
		{"author+time", url.Values{"author": {"dev5"},
			"since": {window.Format(time.RFC3339)}, "until": {window.Add(30 * 24 * time.Hour).Format(time.RFC3339)}}},
	}
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st := be.Open(b)
			seedEvents(b, st)
			srv := httptest.NewServer(server.New(st, nil))
			defer srv.Close()
			for _, f := range filters {
				b.Run(f.name, func(b *testing.B) { benchListing(b, srv.URL, f.query) })
			}
		})
	}
}

func benchListing(b *testing.B, base string, query url.Values) {
	q := url.Values{"limit": {"100"}}
	for k, v := range query {
		q[k] = v
	}
	client := &http.Client{}
	listed, cursor := 0, ""
	for b.Loop() {
		if cursor != "" {
			q.Set("cursor", cursor)
		} else {
			q.Del("cursor")
		}
		resp, err := client.Get(base + "/api/v1/events?" + q.Encode())
		if err != nil {
			b.Fatal(err)
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		if len(page.Events) == 0 {
			b.Fatalf("no events for %s", q.Encode())
		}
		listed += len(page.Events)
		cursor = page.NextCursor
	}
	b.ReportMetric(float64(listed)/b.Elapsed().Seconds(), "events/s")
}
