package metrics_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/metrics"
)

// TestDORAsNestedEqualSeparate checks that windows computed together from
// one read of the widest (DORAs) answer exactly what a DORA call over each
// answers alone, on random worlds where changes ship to two production
// environments, deployments fail, incidents open before, between and
// after deployments, and window edges fall on deployments.
func TestDORAsNestedEqualSeparate(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			w := &world{}
			hour := func(lo, hi int) time.Time { return h(float64(lo + r.IntN(hi-lo))) }
			var deployTimes []time.Time
			for p := int64(1); p <= 3; p++ {
				w.env(p, p*10+1, "production", "production")
				w.env(p, p*10+2, "production-eu", "production")
				w.env(p, p*10+3, "staging", "staging")
				envs := []string{"production", "production-eu", "staging"}
				for i := range int64(40) {
					status := []string{"success", "success", "success", "failed"}[r.IntN(4)]
					at := hour(-400, 700)
					deployTimes = append(deployTimes, at)
					w.deploy(p, p*1000+i, envs[r.IntN(3)], status, []string{"main", "main", "release"}[r.IntN(3)], at)
				}
				for i := range int64(120) {
					merged := hour(-500, 700)
					w.mr(mrSpec{project: p, iid: i + 1, author: "ann", target: []string{"main", "main", "release", "dev"}[r.IntN(4)],
						created: merged.Add(-time.Duration(1+r.IntN(90)) * time.Hour),
						firstAt: merged.Add(-time.Duration(1+r.IntN(200)) * time.Hour), merged: merged})
				}
				for i := range int64(25) {
					opened := hour(-400, 720)
					closed := time.Time{}
					if r.IntN(4) > 0 {
						closed = opened.Add(time.Duration(1+r.IntN(48)) * time.Hour)
					}
					w.issue(p, 500+i, "incident", nil, opened, closed)
				}
			}
			m := metrics.New(w.store(t), metrics.Config{})
			ends := []time.Time{h(700), h(720), deployTimes[3], deployTimes[17].Add(time.Nanosecond)}
			for _, end := range ends {
				for _, projects := range [][]int64{nil, {2}, {1, 3}} {
					var qs []metrics.Query
					for _, days := range []int{7, 30, 14, 90, 3} {
						qs = append(qs, metrics.Query{ProjectIDs: projects, Since: end.AddDate(0, 0, -days), Until: end,
							Bucket: metrics.BucketDay, Now: h(800)})
					}
					// A window starting exactly on a deployment.
					if start := deployTimes[5]; start.Before(end) {
						qs = append(qs, metrics.Query{ProjectIDs: projects, Since: start, Until: end, Bucket: metrics.BucketWeek, Now: h(800)})
					}
					together, err := m.DORAs(ctx, qs...)
					if err != nil {
						t.Fatal(err)
					}
					for i, q := range qs {
						alone, err := m.DORA(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						if alone.DeploymentFrequency.Count == 0 && i == 0 && end.Equal(h(700)) && projects == nil {
							t.Fatalf("the world deploys nothing in %v: the test checks nothing", q)
						}
						sameJSON(t, together[i], alone)
					}
				}
			}
		})
	}
}

// TestDORAsNotNested: windows that end apart or over other projects are
// each computed alone, and an invalid one is refused.
func TestDORAsNotNested(t *testing.T) {
	ctx := context.Background()
	m := metrics.New(deliveryWorld().store(t), metrics.Config{})
	qs := []metrics.Query{
		{Since: since, Until: until},
		{Since: since, Until: h(100)},
		{ProjectIDs: []int64{2}, Since: since, Until: until},
	}
	got, err := m.DORAs(ctx, qs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range qs {
		want, err := m.DORA(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got[i], want)
	}
	if _, err := m.DORAs(ctx, metrics.Query{Since: until, Until: since}); err == nil {
		t.Error("a window ending before it starts was accepted")
	}
}
