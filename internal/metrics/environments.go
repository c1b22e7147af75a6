package metrics

import (
	"cmp"
	"context"
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
