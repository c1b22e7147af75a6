package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// Incident is an incident opened in a window, by the rule DORA counts
// them with (issue_type "incident" or a configured label).
type Incident struct {
	ID        string    `json:"id"`
	ProjectID int64     `json:"project_id"`
	CreatedAt time.Time `json:"created_at"`
	// ClosedAt is zero while it is open.
	ClosedAt time.Time `json:"closed_at"`
}

// Incidents returns the latest incidents opened in q's window, newest
// first, at most limit of them; they are those TimeToRestore counts.
func (m *Metrics) Incidents(ctx context.Context, q Query, limit int) ([]Incident, error) {
	q, err := q.normalize()
	if err != nil {
		return nil, err
	}
	f := q.filter()
	f.IncidentLabels = m.incidentLabels
	issues, err := m.st.Issues(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("issues: %w", err)
	}
	out := []Incident{}
	// Issues come oldest first: the newest are at the end.
	for i := len(issues) - 1; i >= 0 && len(out) < limit; i-- {
		is := issues[i]
		if m.incident(is) && !is.CreatedAt.IsZero() {
			out = append(out, Incident{ID: is.ID, ProjectID: is.ProjectID, CreatedAt: is.CreatedAt.UTC(), ClosedAt: is.ClosedAt.UTC()})
		}
	}
	return out, nil
}

// OpenIncidents is how many incidents were open at a moment, and the
// newest of them.
type OpenIncidents struct {
	At    time.Time  `json:"at"`
	Count int        `json:"count"`
	Open  []Incident `json:"open"`
}

// OpenIncidentsAt counts the incidents (the rule DORA counts them by) of
// the projects (none: every project) opened before at and not closed by
// then, listing the newest limit of them, newest first.
func (m *Metrics) OpenIncidentsAt(ctx context.Context, projects []int64, at time.Time, limit int) (OpenIncidents, error) {
	q, err := Query{ProjectIDs: projects, Since: store.MinTime, Until: at, Bucket: BucketMonth}.normalize()
	if err != nil {
		return OpenIncidents{}, err
	}
	f := q.filter()
	f.IncidentLabels = m.incidentLabels
	issues, err := m.st.Issues(ctx, f)
	if err != nil {
		return OpenIncidents{}, fmt.Errorf("issues: %w", err)
	}
	out := OpenIncidents{At: q.Until, Open: []Incident{}}
	for i := len(issues) - 1; i >= 0; i-- {
		is := issues[i]
		if !m.incident(is) || (!is.ClosedAt.IsZero() && !is.ClosedAt.After(q.Until)) {
			continue
		}
		out.Count++
		if len(out.Open) < limit {
			out.Open = append(out.Open, Incident{ID: is.ID, ProjectID: is.ProjectID, CreatedAt: is.CreatedAt.UTC(), ClosedAt: is.ClosedAt.UTC()})
		}
	}
	return out, nil
}
