package metrics

import (
	"cmp"
	"slices"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// A change is shipped by a deployment when it is a merged merge request of
// the deployment's project, its target branch is the deployment's ref, and
// it was merged after the previous successful deployment of the same
// project and environment finished (any time, for the first) and at or
// before this one finished. So within one environment a merge request is
// shipped by the first deployment that finished at or after its merge, if
// that deployment deployed its target branch.

// deploy is a production deployment and what it is linked to.
type deploy struct {
	store.DeploymentFact
	changes   []string // merge request ids, oldest merge first
	incidents []string // issue ids, oldest first
	// leadChanges are the changes whose lead time it ends: those it
	// shipped first.
	leadChanges []*store.MergeRequestFact
}

// shipping holds production deployments per environment, oldest first,
// complete from their first one on: nothing of the environment finished
// between two of them.
type shipping struct {
	byEnv map[envKey][]*deploy
	// prev is when the deployment before an environment's first one here
	// finished, when there is one.
	prev   map[envKey]time.Time
	envsOf map[int64][]envKey
}

func newShipping() *shipping {
	return &shipping{byEnv: make(map[envKey][]*deploy), prev: make(map[envKey]time.Time),
		envsOf: make(map[int64][]envKey)}
}

func (s *shipping) add(d *deploy) {
	k := envKey{d.ProjectID, d.Environment}
	if _, ok := s.byEnv[k]; !ok {
		s.envsOf[k.project] = append(s.envsOf[k.project], k)
	}
	s.byEnv[k] = append(s.byEnv[k], d)
}

// sort orders each environment's deployments by finish (then id, for a
// stable answer when two finish at once) and the environments by name.
func (s *shipping) sort() {
	for _, ds := range s.byEnv {
		slices.SortStableFunc(ds, func(a, b *deploy) int {
			return cmp.Or(a.FinishedAt.Compare(b.FinishedAt), cmp.Compare(a.ID, b.ID))
		})
	}
	for _, ks := range s.envsOf {
		slices.SortFunc(ks, func(a, b envKey) int { return cmp.Compare(a.env, b.env) })
	}
}

// shippedBy returns the deployments here that shipped m, at most one per
// environment, earliest first.
func (s *shipping) shippedBy(m store.MergeRequestFact) []*deploy {
	if m.MergedAt.IsZero() {
		return nil
	}
	var out []*deploy
	for _, k := range s.envsOf[m.ProjectID] {
		ds := s.byEnv[k]
		i, _ := slices.BinarySearchFunc(ds, m.MergedAt, func(d *deploy, t time.Time) int {
			if d.FinishedAt.Before(t) {
				return -1
			}
			return 1
		})
		if i == len(ds) {
			continue // not deployed to this environment yet
		}
		if prev, ok := s.prev[k]; i == 0 && ok && !m.MergedAt.After(prev) {
			continue // shipped by a deployment before these
		}
		if d := ds[i]; d.Ref == m.TargetBranch {
			out = append(out, d)
		}
	}
	slices.SortStableFunc(out, func(a, b *deploy) int {
		return cmp.Or(a.FinishedAt.Compare(b.FinishedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}
