package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labtrail/labtrail/internal/metrics"
)

// Limits of the deployments page; the JSON has everything.
const (
	// deploymentRows is how many deployments of an environment it lists.
	deploymentRows = 100
	// shippedShown is how many merge requests of a deployment it names.
	shippedShown = 10
)

// idLink is a link to an event's detail page, named by its short
// reference (!iid, #iid).
type idLink struct{ ID, Text string }

func idLinks(ids []string, prefix string, limit int) (out []idLink, more int) {
	for i, id := range ids {
		if i == limit {
			return out, len(ids) - limit
		}
		out = append(out, idLink{ID: id, Text: prefix + id[strings.LastIndex(id, "-")+1:]})
	}
	return out, 0
}

type deploymentRow struct {
	metrics.Deployment
	Shipped   []idLink
	More      int
	Incidents []idLink
}

type environmentGroup struct {
	Name        string
	Deployments []deploymentRow
	Count       int
	Failed      int
	Shipped     int
	// Hidden counts its deployments past deploymentRows.
	Hidden int
}

type deploymentsPageData struct {
	metricsState
	// Environment is the one asked for, "" for all; Environments those
	// that can be, for links.
	Environment  string
	Environments []string
	// Count, Failed and Changes are DORA's deployment count, failed
	// deployments and changes shipped, for every environment; with an
	// environment asked for, its groups' counts instead.
	Count, Failed, Changes int
	Groups                 []environmentGroup
}

// deploymentsPage is GET /deployments: the window's production
// deployments as DORA lists them (GET /api/v1/metrics/dora), per
// environment, each with the merge requests it shipped and the incidents
// that followed it. One DORA computation, and the production
// environments' names.
func (s *Server) deploymentsPage(w http.ResponseWriter, r *http.Request) {
	v, ok := s.startMetricsPage(w, r, "deployments", "Deployments", "dora", filterOptions{window: "30d", extraParam: []string{"environment"}})
	if !ok {
		return
	}
	d := deploymentsPageData{metricsState: v.st, Environment: strings.TrimSpace(r.URL.Query().Get("environment"))}
	if d.Environment != "" {
		v.p.Title = "Deployments to " + d.Environment
	}
	dora, err := s.metricsOf(r.Context(), v.q.ProjectIDs, "").DORA(r.Context(), v.q)
	if err != nil {
		s.failPage(w, r, metricsError(err))
		return
	}
	envs, err := s.metricsOf(r.Context(), v.q.ProjectIDs, "").ProductionEnvironments(r.Context(), v.q.ProjectIDs)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	for _, e := range envs {
		d.Environments = append(d.Environments, e.Name)
	}
	for _, dep := range dora.Deployments {
		d.Environments = append(d.Environments, dep.Environment)
	}
	slices.Sort(d.Environments)
	d.Environments = slices.Compact(d.Environments)
	if d.Environment != "" && !slices.Contains(d.Environments, d.Environment) {
		s.failPage(w, r, &apiError{http.StatusNotFound, fmt.Sprintf("unknown environment %q: no production environment of these projects has that name (known: %s)",
			d.Environment, strings.Join(d.Environments, ", "))})
		return
	}
	d.Count, d.Failed, d.Changes = dora.DeploymentFrequency.Count, dora.ChangeFailureRate.Failed, dora.LeadTime.Changes
	if d.Environment != "" {
		d.Count, d.Failed, d.Changes = 0, 0, 0
	}
	byName := map[string]int{}
	for _, dep := range dora.Deployments { // newest first
		if d.Environment != "" && dep.Environment != d.Environment {
			continue
		}
		i, ok := byName[dep.Environment]
		if !ok {
			i = len(d.Groups)
			byName[dep.Environment] = i
			d.Groups = append(d.Groups, environmentGroup{Name: dep.Environment})
		}
		g := &d.Groups[i]
		g.Count++
		g.Shipped += len(dep.Changes)
		if dep.Failed {
			g.Failed++
		}
		if d.Environment != "" {
			d.Count++
			if dep.Failed {
				d.Failed++
			}
		}
		if len(g.Deployments) == deploymentRows {
			g.Hidden++
			continue
		}
		row := deploymentRow{Deployment: dep}
		row.Shipped, row.More = idLinks(dep.Changes, "!", shippedShown)
		row.Incidents, _ = idLinks(dep.Incidents, "#", len(dep.Incidents))
		g.Deployments = append(g.Deployments, row)
	}
	if d.Environment != "" {
		// Within one environment a change is shipped by one deployment
		// only, so these are its distinct changes.
		for _, g := range d.Groups {
			d.Changes += g.Shipped
		}
	}
	slices.SortFunc(d.Groups, func(a, b environmentGroup) int { return strings.Compare(a.Name, b.Name) })
	v.render(s, w, r, &d)
}
