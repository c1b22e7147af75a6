package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

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

// shippedBy returns the deployments here that shipped the merge request
// of project into target merged at merged, at most one per environment,
// earliest first.
func (s *shipping) shippedBy(project int64, target string, merged time.Time) []*deploy {
	if merged.IsZero() {
		return nil
	}
	var out []*deploy
	for _, k := range s.envsOf[project] {
		ds := s.byEnv[k]
		i, _ := slices.BinarySearchFunc(ds, merged, func(d *deploy, t time.Time) int {
			if d.FinishedAt.Before(t) {
				return -1
			}
			return 1
		})
		if i == len(ds) {
			continue // not deployed to this environment yet
		}
		if prev, ok := s.prev[k]; i == 0 && ok && !merged.After(prev) {
			continue // shipped by a deployment before these
		}
		if d := ds[i]; d.Ref == target {
			out = append(out, d)
		}
	}
	slices.SortStableFunc(out, func(a, b *deploy) int {
		return cmp.Or(a.FinishedAt.Compare(b.FinishedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// windowDeploys is what DORA and the merge-request flow both read of
// deployments before anything else.
type windowDeploys struct {
	isProd func(project int64, env string) bool
	// all are the window's successful deployments to production
	// environments (and maybe a few others), oldest first.
	all []store.DeploymentFact
	// prev and next are each environment's (as all's) last successful deployment
	// before the window and first at or after its end
	// (DeploymentEdges).
	prev, next []store.DeploymentFact
}

// windowDeployments reads which environments are production, then the
// window's deployments and their edges, of production environments (and
// few others): the two reads need nothing of each other and run at once,
// each on a connection of its own.
func (m *Metrics) windowDeployments(ctx context.Context, q Query) (windowDeploys, error) {
	var w windowDeploys
	isProd, envs, err := m.productionFilter(ctx, q.ProjectIDs)
	if err != nil {
		return w, err
	}
	w.isProd = isProd
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		f := q.filter()
		f.Environments = envs
		if w.all, err = m.st.Deployments(gctx, f); err != nil {
			return fmt.Errorf("deployments: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if w.prev, w.next, err = m.st.DeploymentEdges(gctx, q.ProjectIDs, q.Since, q.Until, envs); err != nil {
			return fmt.Errorf("deployment edges: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return windowDeploys{}, err
	}
	return w, nil
}
