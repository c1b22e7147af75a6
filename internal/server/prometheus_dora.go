package server

import (
	"context"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// DefaultDORARefresh is how often RunDORA computes the DORA gauges: the
// figures span 30 days, so minutes of staleness do not show, and a scrape
// never waits for them.
const DefaultDORARefresh = 5 * time.Minute

// doraWindow is the span of the DORA gauges.
const doraWindow = 30 * 24 * time.Hour

// RefreshDORA computes each active project's DORA figures over the 30
// days up to now with m and sets the DORA gauges to them (SetDORA).
func (t *Telemetry) RefreshDORA(ctx context.Context, m *metrics.Metrics, now time.Time) error {
	_, err := t.refreshDORA(ctx, m, now)
	return err
}

// refreshDORA is RefreshDORA, saying for how many projects.
func (t *Telemetry) refreshDORA(ctx context.Context, m *metrics.Metrics, now time.Time) (int, error) {
	ps, err := t.st.Projects(ctx)
	if err != nil {
		return 0, fmt.Errorf("projects: %w", err)
	}
	m = m.Of(store.DefaultConnection) // ps are the default connection's projects
	var rows []DORAGauge
	for _, p := range ps {
		if p.Status != store.ProjectActive {
			continue
		}
		d, err := m.DORA(ctx, metrics.Query{ProjectIDs: []int64{p.ID}, Since: now.Add(-doraWindow), Until: now,
			Bucket: metrics.BucketMonth, Now: now})
		if err != nil {
			return 0, fmt.Errorf("DORA of %s: %w", p.Path, err)
		}
		rows = append(rows, DORAGauge{
			Project:                    p.Path,
			Deployments:                float64(d.DeploymentFrequency.Count),
			LeadTimeMedianSeconds:      d.LeadTime.MedianSeconds,
			ChangeFailureRate:          d.ChangeFailureRate.Rate,
			TimeToRestoreMedianSeconds: d.TimeToRestore.MedianSeconds,
		})
	}
	t.SetDORA(rows)
	return len(rows), nil
}

// RunDORA refreshes the DORA gauges at once and then every every
// (DefaultDORARefresh when not positive) until ctx ends. Until a refresh
// finds a project (a new store, before its first sync), it tries again
// with the store gauges, every DefaultTelemetryRefresh. A failed refresh
// keeps the last figures and is logged.
func (t *Telemetry) RunDORA(ctx context.Context, m *metrics.Metrics, every time.Duration) {
	if every <= 0 {
		every = DefaultDORARefresh
	}
	var last time.Time
	t.repeat(ctx, min(every, DefaultTelemetryRefresh), DefaultTelemetryRefresh, func(ctx context.Context) error {
		if !last.IsZero() && time.Since(last) < every {
			return nil
		}
		n, err := t.refreshDORA(ctx, m, time.Now())
		if err == nil && n > 0 {
			last = time.Now()
		}
		return err
	}, "metrics: computing the DORA gauges failed; they keep their last figures")
}
