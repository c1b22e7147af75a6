package gitlab

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func projectJSON(id int, path string, archived bool) map[string]any {
	return map[string]any{"id": id, "path_with_namespace": path, "name": path, "archived": archived, "default_branch": "main"}
}

func TestSelectProjects(t *testing.T) {
	byActivity := map[string]string{"include_subgroups": "true", "with_shared": "false", "order_by": "last_activity_at", "sort": "desc", "per_page": "100"}
	setup := func(t *testing.T, archivedParam string) *routeFake {
		f := newRouteFake(t)
		f.add("/projects/7", &route{one: projectJSON(7, "team/app", false)})
		f.add("/projects/9", &route{one: projectJSON(9, "team/old", true)})
		f.add("/projects/group%2Fmissing", &route{status: 404, body: map[string]string{"message": "404 Project Not Found"}})
		f.add("/projects/secret", &route{status: 403, body: map[string]string{"message": "403 Forbidden"}})
		want := map[string]string{}
		for k, v := range byActivity {
			want[k] = v
		}
		var allowed []string
		if archivedParam != "" {
			want["archived"] = archivedParam
		} else {
			allowed = []string{"archived"}
		}
		// The group's listing (subgroups included, most recently active
		// first) repeats project 7.
		f.add("/groups/team/projects", &route{want: want, allowed: allowed, items: []any{
			projectJSON(21, "team/sub/b", false), projectJSON(7, "team/app", false), projectJSON(23, "team/d", false),
			projectJSON(20, "team/sub/a", false), projectJSON(22, "team/c", false),
		}})
		f.add("/groups/nogroup/projects", &route{status: 404, body: map[string]string{"message": "404 Group Not Found"}, allowed: []string{"include_subgroups", "with_shared", "archived", "order_by", "sort"}})
		return f
	}
	pids := func(ps []Project) []int64 {
		var out []int64
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}

	f := setup(t, "false")
	c := f.client(t)
	list, err := c.SelectProjects(context.Background(), Selection{
		Repos: []string{"7", "9", "group/missing", " secret/ "}, Groups: []string{"team", "nogroup"}, Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := pids(list.Projects); !reflect.DeepEqual(got, []int64{7, 20, 21}) || list.Capped != 2 || !reflect.DeepEqual(list.CappedIDs, []int64{22, 23}) {
		t.Errorf("projects %v capped %d %v", got, list.Capped, list.CappedIDs)
	}
	var missing []string
	for _, m := range list.Missing {
		missing = append(missing, m.Selector)
	}
	if !reflect.DeepEqual(missing, []string{"group/missing", "secret", "nogroup"}) ||
		!errors.Is(list.Missing[0].Err, ErrNotFound) || !errors.Is(list.Missing[1].Err, ErrForbidden) || !errors.Is(list.Missing[2].Err, ErrNotFound) {
		t.Errorf("missing %+v", list.Missing)
	}
	if f.count("/groups/team/projects") != 3 {
		t.Errorf("group pages: %v", f.requests())
	}

	// Archived ones kept on request; no cap given: the default.
	f = setup(t, "")
	list, err = f.client(t).SelectProjects(context.Background(), Selection{Repos: []string{"9"}, Groups: []string{"team"}, IncludeArchived: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := pids(list.Projects); !reflect.DeepEqual(got, []int64{9, 7, 20, 21, 22, 23}) || list.Capped != 0 || len(list.Missing) != 0 {
		t.Errorf("projects %v capped %d missing %v", got, list.Capped, list.Missing)
	}
}

func TestSelectProjectsOfMember(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects", &route{
		want:  map[string]string{"membership": "true", "archived": "false", "order_by": "last_activity_at", "sort": "desc"},
		items: []any{projectJSON(3, "a/three", false), projectJSON(1, "a/one", false), projectJSON(2, "a/two", false)}})
	list, err := f.client(t).SelectProjects(context.Background(), Selection{Max: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Projects) != 2 || list.Capped != 1 || list.Projects[1].Path != "a/two" || list.Projects[1].DefaultBranch != "main" {
		t.Errorf("list %+v", list)
	}
}

// A token without read_api is not a missing project: the whole selection
// fails.
func TestSelectProjectsScopeError(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects/7", &route{status: 403, body: map[string]string{"error": "insufficient_scope", "scope": "api read_api"}})
	_, err := f.client(t).SelectProjects(context.Background(), Selection{Repos: []string{"7"}})
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("error %v", err)
	}
}
