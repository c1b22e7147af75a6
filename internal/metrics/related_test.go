package metrics_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// One event's links are DORA's: over a window holding the whole delivery
// world, every production deployment links (LinksOf) exactly the merge
// requests and incidents DORA lists for it, and every merged merge request
// is shipped (ShippedBy) by exactly the deployments whose changes DORA
// lists it in; on SQLite and PostgreSQL.
func TestRelatedLinksAreDORAs(t *testing.T) {
	w := deliveryWorld()
	for name, open := range map[string]func(*testing.T) store.MetricsStore{"sqlite": w.store, "postgres": w.postgresStore} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			m := metrics.New(open(t), metrics.Config{})
			all := metrics.Query{Since: h(-500), Until: until.Add(500 * time.Hour), Now: until}
			dora, err := m.DORA(ctx, all)
			if err != nil {
				t.Fatal(err)
			}
			if len(dora.Deployments) < 5 {
				t.Fatalf("the world has more production deployments than %d", len(dora.Deployments))
			}
			shippedBy, followed := map[string][]string{}, map[string][]string{}
			for _, d := range dora.Deployments {
				l, err := m.LinksOf(ctx, d.ProjectID, d.ID, d.FinishedAt)
				if err != nil {
					t.Fatal(err)
				}
				if !l.Counted || !slices.Equal(l.Changes, d.Changes) || !slices.Equal(l.Incidents, d.Incidents) {
					t.Errorf("%s: links %+v, DORA: changes %v incidents %v", d.ID, l, d.Changes, d.Incidents)
				}
				for _, c := range d.Changes {
					shippedBy[c] = append(shippedBy[c], d.ID)
				}
				for _, in := range d.Incidents {
					followed[in] = append(followed[in], d.ID)
				}
			}
			incidents := 0
			for _, e := range w.events {
				if e.Kind != change.KindIssue || !m.IsIncident(e.Attrs["issue_type"].(string), e.Attrs["labels"].([]string)) {
					continue
				}
				incidents++
				ds, err := m.FollowedBy(ctx, e.ProjectID, e.ID, e.CreatedAt)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range ds {
					got = append(got, d.ID)
				}
				if want := followed[e.ID]; !slices.Equal(got, want) {
					t.Errorf("incident %s followed %v, DORA says %v", e.ID, got, want)
				}
			}
			if incidents < 5 || len(followed) < 3 {
				t.Fatalf("too few incidents to compare: %d, %d linked", incidents, len(followed))
			}
			merged := 0
			for _, e := range w.events {
				if e.Kind != change.KindMergeRequest || e.Attrs["merged_at"] == nil {
					continue
				}
				merged++
				at, _ := time.Parse(time.RFC3339Nano, e.Attrs["merged_at"].(string))
				ds, err := m.ShippedBy(ctx, e.ProjectID, e.ID, at)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range ds {
					got = append(got, d.ID)
				}
				slices.Sort(got)
				want := shippedBy[e.ID]
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s shipped by %v, DORA says %v", e.ID, got, want)
				}
			}
			if merged < 5 || len(shippedBy) < 4 {
				t.Fatalf("too little to compare: %d merged, %d shipped", merged, len(shippedBy))
			}
			// By hand: MR 4 and 5 of g/app were shipped by 104; MR 3
			// targets develop and was never shipped.
			if got := shippedBy[change.MergeRequestID(1, 4)]; !slices.Equal(got, []string{change.DeploymentID(1, 104)}) {
				t.Errorf("MR 1/4 shipped by %v, want deployment 104", got)
			}
			if ds, _ := m.ShippedBy(ctx, 1, change.MergeRequestID(1, 3), h(5)); len(ds) != 0 {
				t.Errorf("MR 1/3 targets develop, shipped by %v", ds)
			}
		})
	}
}

// A staging deployment is linked to what it shipped by the same rule, but
// DORA does not count it and links no incident to it; a deployment the
// store holds no successful fact of, or an unknown time, links nothing.
func TestRelatedLinksOutsideDORA(t *testing.T) {
	ctx := context.Background()
	w := deliveryWorld()
	m := metrics.New(w.store(t), metrics.Config{})
	l, err := m.LinksOf(ctx, 1, change.DeploymentID(1, 103), h(22))
	if err != nil {
		t.Fatal(err)
	}
	// Staging's first deployment: every merge into main before it.
	want := []string{change.MergeRequestID(1, 1), change.MergeRequestID(1, 2), change.MergeRequestID(1, 4), change.MergeRequestID(1, 5)}
	if l.Counted || !slices.Equal(l.Changes, want) || len(l.Incidents) != 0 {
		t.Errorf("staging 103: %+v, want not counted, changes %v, no incidents", l, want)
	}
	for _, tc := range []struct {
		id string
		at time.Time
	}{
		{change.DeploymentID(1, 106), h(60)},       // failed
		{change.DeploymentID(1, 104), h(25)},       // not its time
		{change.DeploymentID(1, 104), time.Time{}}, // none
	} {
		l, err := m.LinksOf(ctx, 1, tc.id, tc.at)
		if err != nil || l.Counted || len(l.Changes) != 0 || len(l.Incidents) != 0 {
			t.Errorf("%s at %v: %+v %v, want nothing", tc.id, tc.at, l, err)
		}
	}
	if !m.IsIncident("incident", nil) || !m.IsIncident("issue", []string{" Incident "}) || m.IsIncident("issue", []string{"bug"}) {
		t.Error("IsIncident does not follow DORA's rule")
	}
}
