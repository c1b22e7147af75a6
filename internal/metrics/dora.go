package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// DORA is the four keys over a window, with the deployments behind them.
type DORA struct {
	Since               time.Time           `json:"since"`
	Until               time.Time           `json:"until"`
	Bucket              Bucket              `json:"bucket"`
	DeploymentFrequency DeploymentFrequency `json:"deployment_frequency"`
	LeadTime            LeadTime            `json:"lead_time"`
	ChangeFailureRate   ChangeFailureRate   `json:"change_failure_rate"`
	TimeToRestore       TimeToRestore       `json:"time_to_restore"`
	// Deployments are the production deployments of the window, newest
	// first: the evidence of every figure above.
	Deployments []Deployment `json:"deployments"`
}

// DeploymentFrequency counts production deployments.
type DeploymentFrequency struct {
	Count int `json:"count"`
	// PerDay is Count over the window's length in days (fractional); nil
	// when there was no production deployment: a project whose
	// deployments labtrail does not see is not a project that never
	// deploys.
	PerDay  *float64      `json:"per_day"`
	Level   Level         `json:"level"`
	Buckets []CountBucket `json:"buckets"`
}

// CountBucket is a count in one bucket.
type CountBucket struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// LeadTime is the time changes take to reach production.
type LeadTime struct {
	// Changes counts the merge requests shipped by the window's production
	// deployments, each once (at the earliest of them that shipped it).
	Changes       int      `json:"changes"`
	MedianSeconds *float64 `json:"median_seconds"`
	P75Seconds    *float64 `json:"p75_seconds"`
	P90Seconds    *float64 `json:"p90_seconds"`
	// MergeToDeployMedianSeconds is the median of finished_at minus
	// merged_at (GitLab's lead time).
	MergeToDeployMedianSeconds *float64         `json:"merge_to_deploy_median_seconds"`
	Level                      Level            `json:"level"`
	Buckets                    []LeadTimeBucket `json:"buckets"`
}

// LeadTimeBucket is the lead time of the changes shipped in one bucket.
type LeadTimeBucket struct {
	Start         time.Time `json:"start"`
	Changes       int       `json:"changes"`
	MedianSeconds *float64  `json:"median_seconds"`
}

// ChangeFailureRate is the share of production deployments followed by an
// incident.
type ChangeFailureRate struct {
	Deployments int      `json:"deployments"`
	Failed      int      `json:"failed"`
	Rate        *float64 `json:"rate"`
	Level       Level    `json:"level"`
}

// TimeToRestore is how long the window's incidents stayed open.
type TimeToRestore struct {
	// Incidents counts the incidents opened in the window; Restored, those
	// of them closed since (at any time up to now).
	Incidents     int      `json:"incidents"`
	Restored      int      `json:"restored"`
	MedianSeconds *float64 `json:"median_seconds"`
	P90Seconds    *float64 `json:"p90_seconds"`
	Level         Level    `json:"level"`
}

// Deployment is one production deployment and what it is linked to.
type Deployment struct {
	ID          string    `json:"id"`
	ProjectID   int64     `json:"project_id"`
	ProjectPath string    `json:"project_path"`
	Environment string    `json:"environment"`
	Ref         string    `json:"ref"`
	SHA         string    `json:"sha"`
	WebURL      string    `json:"web_url"`
	FinishedAt  time.Time `json:"finished_at"`
	// Changes are the merge requests it shipped, oldest merge first.
	Changes []string `json:"changes"`
	// Incidents are the incidents opened after it finished and at or
	// before its project's next production deployment finished; any makes
	// it a failed deployment.
	Incidents []string `json:"incidents"`
	Failed    bool     `json:"failed"`
}

// DORA computes the four keys over q's window.
func (m *Metrics) DORA(ctx context.Context, q Query) (DORA, error) {
	ds, err := m.DORAs(ctx, q)
	if err != nil {
		return DORA{}, err
	}
	return ds[0], nil
}

// DORAs computes the four keys over each of qs. Windows that end at the
// same time over the same projects (the overview's last 7, 30 and 90
// days) are nested: they are computed from one read of the widest, each
// answer equal to its own DORA call's. Others are computed one by one.
func (m *Metrics) DORAs(ctx context.Context, qs ...Query) ([]DORA, error) {
	out := make([]DORA, len(qs))
	norm := make([]Query, len(qs))
	for i, q := range qs {
		var err error
		if norm[i], err = q.normalize(); err != nil {
			return nil, err
		}
	}
	if len(norm) == 0 {
		return out, nil
	}
	wide := norm[0]
	for _, q := range norm[1:] {
		if !nested(wide, q) {
			for i, q := range norm {
				b, err := m.doraBase(ctx, q)
				if err != nil {
					return nil, err
				}
				out[i] = b.over(q)
			}
			return out, nil
		}
		if q.Since.Before(wide.Since) {
			wide.Since = q.Since
		}
	}
	b, err := m.doraBase(ctx, wide)
	if err != nil {
		return nil, err
	}
	for i, q := range norm {
		out[i] = b.over(q)
	}
	return out, nil
}

// nested reports whether a and b end together over the same projects, so
// that the wider one's read answers both.
func nested(a, b Query) bool {
	return a.Until.Equal(b.Until) && slices.Equal(a.ProjectIDs, b.ProjectIDs)
}

// doraBase is what DORA reads over a window, before it is summed up over
// the window or over a later-starting one that ends with it: whichever
// window's deployments a change, an incident or a deployment's previous
// one falls in, it links the same way, as every link looks only forward
// from a deployment (to the incidents before its project's next
// production deployment) or back to its environment's previous one,
// which the wider read holds or has as an edge.
type doraBase struct {
	// deps are the window's production deployments.
	deps []*deploy
	// incidents are the incidents opened since the window began.
	incidents []store.IssueFact
	// shipped are the merge requests the deployments shipped, each with
	// the deployments that shipped it, earliest first.
	shipped []shippedChange
}

type shippedChange struct {
	mr *store.ChangeFact
	by []*deploy
}

func (m *Metrics) doraBase(ctx context.Context, q Query) (*doraBase, error) {
	w, err := m.windowDeployments(ctx, q)
	if err != nil {
		return nil, err
	}
	isProd := w.isProd

	// The window's production deployments, per environment.
	ship := newShipping()
	b := &doraBase{}
	for _, d := range w.all {
		if d.Status == "success" && !d.FinishedAt.IsZero() && isProd(d.ProjectID, d.Environment) {
			d.FinishedAt = d.FinishedAt.UTC()
			dp := &deploy{DeploymentFact: d}
			b.deps = append(b.deps, dp)
			ship.add(dp)
		}
	}
	ship.sort()

	for _, e := range w.prev {
		k := envKey{e.ProjectID, e.Environment}
		if _, ok := ship.byEnv[k]; ok && isProd(k.project, k.env) && !e.FinishedAt.IsZero() {
			ship.prev[k] = e.FinishedAt.UTC()
		}
	}

	// Incidents are read and linked beside the changes: both reads are
	// wide, neither needs the other, and each writes only its own fields
	// of the deployments (incidents; changes).
	type linked struct {
		incidents []store.IssueFact
		err       error
	}
	done := make(chan linked, 1)
	go func() {
		is, err := m.linkIncidents(ctx, q, b.deps, w.next, isProd)
		done <- linked{is, err}
	}()
	shipped, changesErr := m.linkChanges(ctx, q, ship)
	l := <-done
	if changesErr != nil {
		return nil, changesErr
	}
	if l.err != nil {
		return nil, l.err
	}
	b.incidents, b.shipped = l.incidents, shipped
	return b, nil
}

// over sums b up over q's window, which ends when b's does and starts
// when b's does or later.
func (b *doraBase) over(q Query) DORA {
	deps := make([]*deploy, 0, len(b.deps))
	for _, d := range b.deps {
		if !d.FinishedAt.Before(q.Since) {
			deps = append(deps, d)
		}
	}
	out := DORA{Since: q.Since, Until: q.Until, Bucket: q.Bucket}
	out.DeploymentFrequency = deploymentFrequency(q, deps)
	out.LeadTime = leadTime(q, b.shipped)
	out.ChangeFailureRate = changeFailureRate(deps)
	out.TimeToRestore = timeToRestore(q, b.incidents)

	slices.SortStableFunc(deps, func(a, b *deploy) int {
		return cmp.Or(b.FinishedAt.Compare(a.FinishedAt), cmp.Compare(b.ID, a.ID))
	})
	out.Deployments = make([]Deployment, 0, len(deps))
	for _, d := range deps {
		out.Deployments = append(out.Deployments, Deployment{
			ID: d.ID, ProjectID: d.ProjectID, ProjectPath: d.ProjectPath, Environment: d.Environment,
			Ref: d.Ref, SHA: d.SHA, WebURL: d.WebURL, FinishedAt: d.FinishedAt,
			Changes: nonNil(d.changes), Incidents: nonNil(d.incidents), Failed: len(d.incidents) > 0,
		})
	}
	return out
}

// linkIncidents links each deployment to the incidents of its project
// opened after it finished and at or before the project's next production
// deployment (of any environment; after the window, a next edge)
// finished, and returns the incidents read: every one opened since the
// window began.
func (m *Metrics) linkIncidents(ctx context.Context, q Query, deps []*deploy, nextEdges []store.DeploymentFact,
	isProd func(int64, string) bool) ([]store.IssueFact, error) {
	finishes := make(map[int64][]time.Time) // per project, sorted
	for _, d := range deps {
		finishes[d.ProjectID] = append(finishes[d.ProjectID], d.FinishedAt)
	}
	for _, e := range nextEdges {
		if isProd(e.ProjectID, e.Environment) && !e.FinishedAt.IsZero() {
			if _, ok := finishes[e.ProjectID]; ok {
				finishes[e.ProjectID] = append(finishes[e.ProjectID], e.FinishedAt.UTC())
			}
		}
	}
	for _, ts := range finishes {
		slices.SortFunc(ts, time.Time.Compare)
	}
	// Incidents are read from since: none opened before the window can
	// follow a deployment in it, nor count for time to restore. They are
	// read up to the last next deployment, or without end when some
	// project's last deployment is in the window (it has no next one).
	issueUntil := q.Until
	for _, ts := range finishes {
		last := ts[len(ts)-1]
		if last.Before(q.Until) {
			issueUntil = time.Time{}
			break
		}
		issueUntil = maxTime(issueUntil, past(last))
	}
	issues, err := m.st.Issues(ctx, store.FactFilter{ProjectIDs: q.ProjectIDs, Since: q.Since, Until: issueUntil,
		IncidentLabels: m.incidentLabels})
	if err != nil {
		return nil, fmt.Errorf("issues: %w", err)
	}
	var incidents []store.IssueFact
	byProject := make(map[int64][]store.IssueFact)
	for _, is := range issues {
		if m.incident(is) && !is.CreatedAt.IsZero() {
			is.CreatedAt, is.ClosedAt = is.CreatedAt.UTC(), is.ClosedAt.UTC()
			incidents = append(incidents, is)
			byProject[is.ProjectID] = append(byProject[is.ProjectID], is)
		}
	}
	for _, is := range byProject {
		slices.SortStableFunc(is, func(a, b store.IssueFact) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
		})
	}
	for _, d := range deps {
		ts := finishes[d.ProjectID]
		next := time.Time{}
		if i := firstAfter(ts, d.FinishedAt, func(t time.Time) time.Time { return t }); i < len(ts) {
			next = ts[i]
		}
		is := byProject[d.ProjectID]
		for _, in := range is[firstAfter(is, d.FinishedAt, func(in store.IssueFact) time.Time { return in.CreatedAt }):] {
			if !next.IsZero() && in.CreatedAt.After(next) {
				break
			}
			d.incidents = append(d.incidents, in.ID)
		}
	}

	return incidents, nil
}

// linkChanges reads the merge requests the window's deployments may have
// shipped and links each to them. A deployment ships what was merged since
// its environment's previous deployment, which may be long before the
// window (or, for an environment's first deployment, ever): projects with
// such a first deployment are read without a lower bound, the others from
// their earliest previous deployment.
func (m *Metrics) linkChanges(ctx context.Context, q Query, ship *shipping) ([]shippedChange, error) {
	if len(ship.byEnv) == 0 {
		return nil, nil
	}
	lower := make(map[int64]time.Time) // per project; zero: unbounded
	for k := range ship.byEnv {
		prev, ok := ship.prev[k]
		if !ok {
			lower[k.project] = time.Time{}
			continue
		}
		if cur, seen := lower[k.project]; !seen || (!cur.IsZero() && prev.Before(cur)) {
			lower[k.project] = prev
		}
	}
	var unbounded, bounded []int64
	var since time.Time
	for p, t := range lower {
		if t.IsZero() {
			unbounded = append(unbounded, p)
		} else {
			bounded = append(bounded, p)
			if since.IsZero() || t.Before(since) {
				since = t
			}
		}
	}
	slices.Sort(unbounded)
	slices.Sort(bounded)
	filters := []store.FactFilter{
		{ProjectIDs: unbounded, Until: q.Until},
		{ProjectIDs: bounded, Since: since, Until: q.Until},
	}
	if len(q.ProjectIDs) == 0 && len(unbounded) == 0 {
		// Over every project, every project's merges since the earliest
		// previous deployment are one range of the merged_at index, read
		// in order, without a list of ids to look up and sort: those of
		// projects that did not deploy, or merged before their own
		// environments' previous deployments, are shipped by none here.
		filters = []store.FactFilter{{Since: since, Until: q.Until}}
	}
	var mrs []store.ChangeFact
	for _, f := range filters {
		if len(f.ProjectIDs) == 0 && len(filters) > 1 {
			continue // an empty list would mean every project
		}
		got, err := inHalves(ctx, f, m.st.MergedChanges)
		if err != nil {
			return nil, fmt.Errorf("merged merge requests: %w", err)
		}
		if mrs == nil {
			mrs = got
		} else {
			mrs = append(mrs, got...)
		}
	}
	byMerge := func(a, b store.ChangeFact) int {
		return cmp.Or(a.MergedAt.Compare(b.MergedAt), cmp.Compare(a.ID, b.ID))
	}
	// Each read comes in this order already; two reads are merged. Moving
	// tens of thousands of these structs is what a sort would cost.
	if !slices.IsSortedFunc(mrs, byMerge) {
		slices.SortStableFunc(mrs, byMerge)
	}
	var shipped []shippedChange
	for i := range mrs {
		mr := &mrs[i]
		by := ship.shippedBy(mr.ProjectID, mr.TargetBranch, mr.MergedAt)
		for _, d := range by {
			d.changes = append(d.changes, mr.ID)
		}
		if len(by) > 0 {
			shipped = append(shipped, shippedChange{mr, by})
		}
	}
	return shipped, nil
}

func deploymentFrequency(q Query, deps []*deploy) DeploymentFrequency {
	s := newSeries(q.Bucket, q.Since, q.Until)
	counts := make([]int, len(s.starts))
	for _, d := range deps {
		if i := s.at(d.FinishedAt); i >= 0 {
			counts[i]++
		}
	}
	out := DeploymentFrequency{Count: len(deps), Buckets: make([]CountBucket, len(s.starts))}
	for i, t := range s.starts {
		out.Buckets[i] = CountBucket{Start: t, Count: counts[i]}
	}
	if len(deps) > 0 {
		// One division of integers, so that a rate exactly on a threshold
		// (4 in 28 days) compares equal to it.
		out.PerDay = ptr(float64(len(deps)) * float64(day) / float64(q.Until.Sub(q.Since)))
	}
	out.Level = levelOf(DeploymentFrequencyLevel, out.PerDay)
	return out
}

// leadTime measures each change once, at the earliest of the window's
// production deployments that shipped it: a change deployed to two
// production environments reached production at the first.
func leadTime(q Query, shipped []shippedChange) LeadTime {
	s := newSeries(q.Bucket, q.Since, q.Until)
	perBucket := make([][]float64, len(s.starts))
	var lead, mergeToDeploy []float64
	for _, sc := range shipped {
		// by is earliest first, all before the window's end.
		i := slices.IndexFunc(sc.by, func(d *deploy) bool { return !d.FinishedAt.Before(q.Since) })
		if i < 0 {
			continue
		}
		d := sc.by[i]
		v := seconds(d.FinishedAt.Sub(sc.mr.StartedAt))
		lead = append(lead, v)
		mergeToDeploy = append(mergeToDeploy, seconds(d.FinishedAt.Sub(sc.mr.MergedAt)))
		if i := s.at(d.FinishedAt); i >= 0 {
			perBucket[i] = append(perBucket[i], v)
		}
	}
	sum := Summarize(lead)
	out := LeadTime{Changes: len(lead), MedianSeconds: sum.MedianSeconds, P75Seconds: sum.P75Seconds,
		P90Seconds: sum.P90Seconds, MergeToDeployMedianSeconds: medianPtr(mergeToDeploy),
		Buckets: make([]LeadTimeBucket, len(s.starts))}
	out.Level = levelOf(LeadTimeLevel, out.MedianSeconds)
	for i, t := range s.starts {
		out.Buckets[i] = LeadTimeBucket{Start: t, Changes: len(perBucket[i]), MedianSeconds: medianPtr(perBucket[i])}
	}
	return out
}

func changeFailureRate(deps []*deploy) ChangeFailureRate {
	out := ChangeFailureRate{Deployments: len(deps)}
	for _, d := range deps {
		if len(d.incidents) > 0 {
			out.Failed++
		}
	}
	if out.Deployments > 0 {
		out.Rate = ptr(float64(out.Failed) / float64(out.Deployments))
	}
	out.Level = levelOf(ChangeFailureRateLevel, out.Rate)
	return out
}

// timeToRestore is over the incidents opened in the window; those not
// closed count as incidents but not as restored.
func timeToRestore(q Query, incidents []store.IssueFact) TimeToRestore {
	var out TimeToRestore
	var restore []float64
	for _, is := range incidents {
		if is.CreatedAt.Before(q.Since) || !is.CreatedAt.Before(q.Until) {
			continue
		}
		out.Incidents++
		if !is.ClosedAt.IsZero() {
			out.Restored++
			restore = append(restore, seconds(is.ClosedAt.Sub(is.CreatedAt)))
		}
	}
	sum := Summarize(restore)
	out.MedianSeconds, out.P90Seconds = sum.MedianSeconds, sum.P90Seconds
	out.Level = levelOf(TimeToRestoreLevel, out.MedianSeconds)
	return out
}

// firstAfter is the index of the first of xs (sorted by at) whose time
// is after t, or len(xs).
func firstAfter[X any](xs []X, t time.Time, at func(X) time.Time) int {
	i, _ := slices.BinarySearchFunc(xs, t, func(x X, t time.Time) int {
		if at(x).After(t) {
			return 1
		}
		return -1
	})
	return i
}

// past is an exclusive bound that keeps t in: a margin wider than any
// backend's time precision (PostgreSQL keeps microseconds), as what is
// read is matched exactly afterwards.
func past(t time.Time) time.Time {
	if b := t.Add(time.Millisecond); b.Before(store.MaxTime) {
		return b
	}
	return store.MaxTime
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
