package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// Environment is an environment that counts as production for the
// metrics.
type Environment struct {
	ProjectID int64  `json:"project_id"`
	Name      string `json:"name"`
	Tier      string `json:"tier"`
}

// ProductionEnvironments returns the environments of the projects (none:
// every project) that count as production, by the rule DORA applies: tier
// "production" or a name matching a configured glob. None means DORA has
// no deployment to count, which a page can then explain. An environment
// labtrail has not stored counts only through its deployments, so it is
// not listed here.
func (m *Metrics) ProductionEnvironments(ctx context.Context, projects []int64) ([]Environment, error) {
	isProd, err := m.production(ctx, projects)
	if err != nil {
		return nil, err
	}
	envs, err := m.st.Environments(ctx, projects)
	if err != nil {
		return nil, err
	}
	out := []Environment{}
	for _, e := range envs {
		if isProd(e.ProjectID, e.Name) {
			out = append(out, Environment{ProjectID: e.ProjectID, Name: e.Name, Tier: e.Tier})
		}
	}
	slices.SortFunc(out, func(a, b Environment) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ProjectID, b.ProjectID))
	})
	return out, nil
}

// EnvironmentDeployments counts the successful deployments to one
// environment name (across the projects) in a window.
type EnvironmentDeployments struct {
	Environment string `json:"environment"`
	Count       int    `json:"count"`
	// Production is whether some of them count as production
	// deployments for DORA.
	Production bool `json:"production"`
}

// DeploymentsByEnvironment counts the successful deployments that
// finished in q's window per environment name, every environment (not
// only production), most deployed first.
func (m *Metrics) DeploymentsByEnvironment(ctx context.Context, q Query) ([]EnvironmentDeployments, error) {
	q, err := q.normalize()
	if err != nil {
		return nil, err
	}
	isProd, err := m.production(ctx, q.ProjectIDs)
	if err != nil {
		return nil, err
	}
	deps, err := inHalves(ctx, q.filter(), m.st.Deployments)
	if err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	by := map[string]*EnvironmentDeployments{}
	for _, d := range deps {
		e := by[d.Environment]
		if e == nil {
			e = &EnvironmentDeployments{Environment: d.Environment}
			by[d.Environment] = e
		}
		e.Count++
		e.Production = e.Production || isProd(d.ProjectID, d.Environment)
	}
	out := make([]EnvironmentDeployments, 0, len(by))
	for _, e := range by {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b EnvironmentDeployments) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Environment, b.Environment))
	})
	return out, nil
}
