// Package metrics computes delivery metrics from the facts the store keeps:
// the DORA four keys, merge-request flow and pipeline health. It reads the
// store only (store.MetricsStore), never GitLab, and every figure comes with
// the rule that produced it written down beside the code, so a number on the
// dashboard can be explained from the evidence it is returned with.
//
// Durations are float64 seconds; a figure with no data is nil (JSON null),
// never 0; times are UTC.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/labtrail/labtrail/internal/store"
)

// Config is what the metrics need to know of a team's conventions.
type Config struct {
	// ProductionEnvironments are globs (path.Match) on environment names
	// that count as production besides those of tier "production"
	// (LABTRAIL_PRODUCTION_ENVIRONMENTS).
	ProductionEnvironments []string
	// IncidentLabels are the labels that make an issue an incident besides
	// issue_type "incident" (LABTRAIL_INCIDENT_LABELS); empty means
	// DefaultIncidentLabels. Labels compare case-insensitively.
	IncidentLabels []string
}

// DefaultIncidentLabels are the incident labels when none are configured.
var DefaultIncidentLabels = []string{"incident"}

// Validate reports a glob in ProductionEnvironments that path.Match
// refuses, so that a typo in the configuration is an error at start rather
// than an environment silently never counting as production.
func (c Config) Validate() error {
	for _, g := range c.ProductionEnvironments {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("production environment glob %q: %w", g, err)
		}
	}
	return nil
}

// Metrics computes the metrics from a store. It is safe for concurrent use.
type Metrics struct {
	st             store.MetricsStore
	prodGlobs      []string
	incidentLabels []string
}

// New returns the metrics of st under cfg. A glob that path.Match refuses
// never matches (Config.Validate reports it).
func New(st store.MetricsStore, cfg Config) *Metrics {
	m := &Metrics{st: st}
	for _, g := range cfg.ProductionEnvironments {
		if g = strings.TrimSpace(g); g != "" {
			m.prodGlobs = append(m.prodGlobs, g)
		}
	}
	for _, l := range cfg.IncidentLabels {
		if l = strings.TrimSpace(l); l != "" {
			m.incidentLabels = append(m.incidentLabels, l)
		}
	}
	if len(m.incidentLabels) == 0 {
		m.incidentLabels = DefaultIncidentLabels
	}
	return m
}

// Of is m computing over the facts of one connection alone (its name,
// store.DefaultConnection the environment's), or "" every connection's:
// project ids are unique only within one GitLab, so a Query's
// ProjectIDs are of one connection, and a principal who signed in with
// the default connection's GitLab reads its facts only.
func (m *Metrics) Of(connection string) *Metrics {
	c := *m
	c.st = m.st.FactsOf(connection)
	return &c
}

// Query selects what a metric is computed over.
type Query struct {
	// ProjectIDs are the projects; none means every project.
	ProjectIDs []int64
	// Since (inclusive) and Until (exclusive) are the window, already
	// defaulted by the caller; both are required.
	Since, Until time.Time
	// Bucket is the width of the series' buckets; "" means BucketWeek.
	Bucket Bucket
	// Now is when ages (of open merge requests) are measured to; zero
	// means the current time.
	Now time.Time
}

// MaxBuckets bounds how many buckets a series may have: a window of years
// by day is a mistake, not a chart.
const MaxBuckets = 5000

// ErrInvalidQuery is what every error about a query or a parameter
// matches (errors.Is): the caller's mistake, a 400 over HTTP. Its message
// is meant for the user.
var ErrInvalidQuery = errors.New("invalid metrics query")

type queryError struct{ msg string }

func (e *queryError) Error() string        { return e.msg }
func (e *queryError) Is(target error) bool { return target == ErrInvalidQuery }

func invalidf(format string, args ...any) error {
	return &queryError{fmt.Sprintf(format, args...)}
}

// normalize checks q and fills its defaults: UTC times, the default
// bucket, Now.
func (q Query) normalize() (Query, error) {
	if q.Since.IsZero() || q.Until.IsZero() {
		return q, invalidf("since and until are both required")
	}
	q.Since, q.Until = q.Since.UTC(), q.Until.UTC()
	if !q.Since.Before(q.Until) {
		return q, invalidf("since (%s) must be before until (%s)", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	if q.Since.Before(store.MinTime) || q.Until.After(store.MaxTime) {
		return q, invalidf("since and until must be between %s and %s",
			store.MinTime.Format(time.RFC3339), store.MaxTime.Format(time.RFC3339))
	}
	b, err := ParseBucket(string(q.Bucket))
	if err != nil {
		return q, err
	}
	q.Bucket = b
	if n := q.Bucket.count(q.Since, q.Until); n > MaxBuckets {
		return q, invalidf("the window holds %d buckets of a %s, more than %d: choose a wider bucket or a shorter window",
			n, q.Bucket, MaxBuckets)
	}
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	q.Now = q.Now.UTC()
	return q, nil
}

func (q Query) filter() store.FactFilter {
	return store.FactFilter{ProjectIDs: q.ProjectIDs, Since: q.Since, Until: q.Until}
}

// splitAfter is the shortest window inHalves splits: a shorter one holds
// too few rows for a second query to pay for itself.
const splitAfter = 7 * day

// inHalves reads f's window with read as two halves at once, each on a
// connection of its own, and joins them in order: the reads of tens of
// thousands of rows are most of a metric's time, and a store spends a core
// on each. The halves split the window at a whole second, so that every
// backend keeps the bound exactly and a row is in exactly one of them. A
// row could only be missed or read twice if its time moved across the
// split between the two reads, and the times read this way (merged_at,
// created_at) are set once.
func inHalves[R any](ctx context.Context, f store.FactFilter, read func(context.Context, store.FactFilter) ([]R, error)) ([]R, error) {
	if f.Since.IsZero() || f.Until.IsZero() || f.Until.Sub(f.Since) < splitAfter {
		return read(ctx, f)
	}
	first, second := f, f
	first.Until = f.Since.Add(f.Until.Sub(f.Since) / 2).Truncate(time.Second)
	second.Since = first.Until
	var later []R
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		later, err = read(gctx, second)
		return err
	})
	earlier, err := read(gctx, first)
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	return append(earlier, later...), nil
}

// envKey is one environment of one project: production-ness, and the
// previous deployment, are per environment name within a project.
type envKey struct {
	project int64
	env     string
}

// production returns whether an environment is production: its tier is
// "production" or its name matches a configured glob.
func (m *Metrics) production(ctx context.Context, projects []int64) (func(project int64, env string) bool, error) {
	isProd, _, err := m.productionFilter(ctx, projects)
	return isProd, err
}

// productionFilter is production, and a filter a store can apply to
// deployments to read those to production environments and few others.
func (m *Metrics) productionFilter(ctx context.Context, projects []int64) (func(project int64, env string) bool, *store.EnvFilter, error) {
	envs, err := m.st.Environments(ctx, projects)
	if err != nil {
		return nil, nil, fmt.Errorf("environments: %w", err)
	}
	tier := make(map[envKey]bool)
	filter := &store.EnvFilter{Patterns: m.prodGlobs}
	for _, e := range envs {
		if e.Tier == "production" {
			tier[envKey{e.ProjectID, e.Name}] = true
			if !slices.Contains(filter.Names, e.Name) {
				filter.Names = append(filter.Names, e.Name)
			}
		}
	}
	memo := make(map[envKey]bool)
	return func(project int64, env string) bool {
		k := envKey{project, env}
		if tier[k] {
			return true
		}
		if v, ok := memo[k]; ok {
			return v
		}
		v := false
		for _, g := range m.prodGlobs {
			if ok, _ := path.Match(g, env); ok {
				v = true
				break
			}
		}
		memo[k] = v
		return v
	}, filter, nil
}

// incident reports whether an issue is an incident: issue_type
// "incident", or a configured label.
func (m *Metrics) incident(is store.IssueFact) bool {
	if is.IssueType == "incident" {
		return true
	}
	for _, l := range is.Labels {
		for _, want := range m.incidentLabels {
			if strings.EqualFold(strings.TrimSpace(l), want) {
				return true
			}
		}
	}
	return false
}

// seconds is d in seconds, never negative: a clock skew between GitLab's
// times must not make a negative duration.
func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}

func ptr(f float64) *float64 { return &f }
