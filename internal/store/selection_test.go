package store_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/labtrail/labtrail/internal/store"
)

func TestSelectProjects(t *testing.T) {
	all := []store.Project{{ID: 3, Path: "team/api"}, {ID: 1, Path: "team/web"}, {ID: 7, Path: "team/infra/k8s"}, {ID: 9, Path: "teams/x"}}
	for _, c := range []struct {
		refs, groups []string
		want         []int64
		unknown      string
	}{
		{nil, nil, nil, ""},
		{[]string{"TEAM/Web", "3"}, nil, []int64{1, 3}, ""},
		{nil, []string{"team"}, []int64{1, 3, 7}, ""},
		{nil, []string{"/team/infra/"}, []int64{7}, ""},
		{[]string{"9"}, []string{"team/infra"}, []int64{7, 9}, ""},
		{[]string{"7"}, []string{"team/infra"}, []int64{7}, ""},
		{[]string{"team/nope"}, nil, nil, "project"},
		{nil, []string{"tea"}, nil, "group"},
		{nil, []string{"team/web"}, nil, "group"}, // a project is not a group
	} {
		got, err := store.SelectProjects(all, c.refs, c.groups)
		var ue *store.UnknownSelectionError
		switch {
		case c.unknown != "":
			if !errors.As(err, &ue) || ue.What != c.unknown || !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%v %v: err %v, want an unknown %s", c.refs, c.groups, err, c.unknown)
			}
		case err != nil || !slices.Equal(got, c.want) || (c.want == nil) != (got == nil):
			t.Errorf("%v %v: %v, %v; want %v", c.refs, c.groups, got, err, c.want)
		}
	}
}
