package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// What DORA links one event to, for the event's detail page: the
// production deployments that shipped a merge request, the merge requests
// a deployment shipped and the incidents that followed it. Each is the
// rule DORA computes over a window (linkChanges, shippedBy,
// linkIncidents), applied to one event with a few bounded reads.

// ShippedBy returns the production deployments that shipped the merge
// request id of project, merged at mergedAt: per production environment,
// the first successful deployment that finished at or after the merge, if
// it deployed the merge request's target branch; earliest first. It is
// linkChanges over those deployments, from each environment's previous
// one, so the rule is DORA's to the letter: a merge request the store
// holds no merged fact of was shipped by none.
func (m *Metrics) ShippedBy(ctx context.Context, project int64, id string, mergedAt time.Time) ([]store.DeploymentFact, error) {
	if mergedAt.IsZero() {
		return nil, nil
	}
	mergedAt = mergedAt.UTC()
	isProd, err := m.production(ctx, []int64{project})
	if err != nil {
		return nil, err
	}
	// Each environment's first deployment at or after the merge, the only
	// one there that can have shipped it, and the one before it.
	prev, next, err := m.st.DeploymentEdges(ctx, []int64{project}, mergedAt, mergedAt, nil)
	if err != nil {
		return nil, fmt.Errorf("deployment edges: %w", err)
	}
	ship := newShipping()
	var until time.Time
	for _, e := range next {
		if !isProd(e.ProjectID, e.Environment) || e.FinishedAt.IsZero() {
			continue
		}
		at := e.FinishedAt.UTC()
		ds, err := m.st.Deployments(ctx, store.FactFilter{ProjectIDs: []int64{project}, Since: at, Until: past(at)})
		if err != nil {
			return nil, fmt.Errorf("deployments: %w", err)
		}
		for _, d := range ds {
			if d.Environment == e.Environment && d.Status == "success" && d.FinishedAt.UTC().Equal(at) {
				d.FinishedAt = at
				ship.add(&deploy{DeploymentFact: d})
				until = maxTime(until, past(at))
			}
		}
	}
	if len(ship.byEnv) == 0 {
		return nil, nil
	}
	ship.sort()
	for _, e := range prev {
		k := envKey{e.ProjectID, e.Environment}
		if _, ok := ship.byEnv[k]; ok && !e.FinishedAt.IsZero() {
			ship.prev[k] = e.FinishedAt.UTC()
		}
	}
	if _, err := m.linkChanges(ctx, Query{ProjectIDs: []int64{project}, Since: mergedAt, Until: until}, ship); err != nil {
		return nil, err
	}
	var out []store.DeploymentFact
	for _, ds := range ship.byEnv {
		for _, d := range ds {
			if slices.Contains(d.changes, id) {
				out = append(out, d.DeploymentFact)
			}
		}
	}
	slices.SortFunc(out, func(a, b store.DeploymentFact) int {
		return cmp.Or(a.FinishedAt.Compare(b.FinishedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeploymentLinks are what DORA links one deployment to.
type DeploymentLinks struct {
	// Counted says DORA counts the deployment: it succeeded, finished,
	// and its environment is production.
	Counted bool
	// Changes are the merge requests it shipped, oldest merge first, by
	// the rule of its environment (whether production or not).
	Changes []string
	// Incidents are the incidents of its project opened after it
	// finished and at or before the project's next production deployment
	// finished: any makes it a failed deployment. Only for one DORA
	// counts.
	Incidents []string
}

// LinksOf returns what DORA links the deployment id of project, finished
// at finishedAt, to. A deployment the store holds no successful finished
// fact of is linked to nothing.
func (m *Metrics) LinksOf(ctx context.Context, project int64, id string, finishedAt time.Time) (DeploymentLinks, error) {
	var out DeploymentLinks
	if finishedAt.IsZero() {
		return out, nil
	}
	at := finishedAt.UTC()
	ds, err := m.st.Deployments(ctx, store.FactFilter{ProjectIDs: []int64{project}, Since: at.Add(-time.Millisecond), Until: past(at)})
	if err != nil {
		return out, fmt.Errorf("deployments: %w", err)
	}
	var self *deploy
	for _, d := range ds {
		if d.ID == id && d.Status == "success" {
			d.FinishedAt = d.FinishedAt.UTC()
			self = &deploy{DeploymentFact: d}
		}
	}
	if self == nil {
		return out, nil
	}
	at = self.FinishedAt
	// It and any deployment of its environment that finished with it:
	// shippedBy orders those by id.
	ship := newShipping()
	for _, d := range ds {
		switch {
		case d.ID == id:
			ship.add(self)
		case d.Environment == self.Environment && d.Status == "success" && d.FinishedAt.UTC().Equal(at):
			d.FinishedAt = at
			ship.add(&deploy{DeploymentFact: d})
		}
	}
	ship.sort()
	isProd, err := m.production(ctx, []int64{project})
	if err != nil {
		return out, err
	}
	out.Counted = isProd(project, self.Environment)
	// The merges it can have shipped are those since its environment's
	// previous deployment finished, before it.
	prev, next, err := m.st.DeploymentEdges(ctx, []int64{project}, at, at.Add(time.Microsecond), nil)
	if err != nil {
		return out, fmt.Errorf("deployment edges: %w", err)
	}
	k := envKey{project, self.Environment}
	for _, e := range prev {
		if e.Environment == self.Environment && !e.FinishedAt.IsZero() {
			ship.prev[k] = e.FinishedAt.UTC()
		}
	}
	q := Query{ProjectIDs: []int64{project}, Since: at, Until: past(at)}
	if _, err := m.linkChanges(ctx, q, ship); err != nil {
		return out, err
	}
	out.Changes = nonNil(self.changes)
	out.Incidents = []string{}
	if !out.Counted {
		return out, nil
	}
	if _, err := m.linkIncidents(ctx, q, []*deploy{self}, next, isProd); err != nil {
		return out, err
	}
	out.Incidents = nonNil(self.incidents)
	return out, nil
}

// FollowedBy returns the production deployments DORA counts as failed
// because of the incident id of project, opened at openedAt: its
// project's latest successful production deployment that finished before
// it was opened, as LinksOf links it (so by the same rule). A project
// with two production environments may have two, finished at once.
func (m *Metrics) FollowedBy(ctx context.Context, project int64, id string, openedAt time.Time) ([]store.DeploymentFact, error) {
	if openedAt.IsZero() {
		return nil, nil
	}
	isProd, err := m.production(ctx, []int64{project})
	if err != nil {
		return nil, err
	}
	// Finished strictly before the opening: one that finished as it was
	// opened is the next deployment, the incident its predecessor's.
	prev, _, err := m.st.DeploymentEdges(ctx, []int64{project}, openedAt.UTC(), time.Time{}, nil)
	if err != nil {
		return nil, fmt.Errorf("deployment edges: %w", err)
	}
	var last time.Time
	for _, e := range prev {
		if isProd(e.ProjectID, e.Environment) && e.FinishedAt.After(last) {
			last = e.FinishedAt.UTC()
		}
	}
	if last.IsZero() {
		return nil, nil
	}
	ds, err := m.st.Deployments(ctx, store.FactFilter{ProjectIDs: []int64{project}, Since: last, Until: past(last)})
	if err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	var out []store.DeploymentFact
	for _, d := range ds {
		if !d.FinishedAt.UTC().Equal(last) || !isProd(d.ProjectID, d.Environment) {
			continue
		}
		l, err := m.LinksOf(ctx, project, d.ID, d.FinishedAt)
		if err != nil {
			return nil, err
		}
		if slices.Contains(l.Incidents, id) {
			out = append(out, d)
		}
	}
	return out, nil
}

// IsIncident reports whether an issue of this type and these labels is an
// incident to DORA: issue_type "incident", or a configured label.
func (m *Metrics) IsIncident(issueType string, labels []string) bool {
	return m.incident(store.IssueFact{IssueType: strings.TrimSpace(issueType), Labels: labels})
}
