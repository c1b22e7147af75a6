package store

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// UnknownSelectionError is a project or group of a selection that no
// stored project matches. It is ErrNotFound to errors.Is.
type UnknownSelectionError struct {
	// What is "project" or "group"; Ref as it was given.
	What, Ref string
}

func (e *UnknownSelectionError) Error() string {
	if e.What == "group" {
		return fmt.Sprintf("unknown group %q: no project labtrail syncs is in it", e.Ref)
	}
	return fmt.Sprintf("unknown project %q: not a project labtrail syncs", e.Ref)
}

// Is makes the error ErrNotFound.
func (e *UnknownSelectionError) Is(target error) bool { return target == ErrNotFound }

// SelectProjects resolves a selection of projects among the stored ones:
// refs are ids or paths (any case, as GitLab reads them; a path stands
// for its project's id, so events from before a rename count too), groups
// are path prefixes with their subgroups. Nil refs and groups select every
// project (nil ids). With groups the ids are sorted and unique; refs
// alone keep their order.
func SelectProjects(all []Project, refs, groups []string) ([]int64, error) {
	if len(refs) == 0 && len(groups) == 0 {
		return nil, nil
	}
	var ids []int64
	for _, ref := range refs {
		i := slices.IndexFunc(all, func(p Project) bool {
			return strconv.FormatInt(p.ID, 10) == ref || strings.EqualFold(p.Path, ref)
		})
		if i < 0 {
			return nil, &UnknownSelectionError{What: "project", Ref: ref}
		}
		ids = append(ids, all[i].ID)
	}
	if len(groups) == 0 {
		return ids, nil
	}
	for _, g := range groups {
		g = strings.Trim(g, "/")
		n := 0
		for _, p := range all {
			if len(p.Path) > len(g) && strings.EqualFold(p.Path[:len(g)+1], g+"/") {
				ids = append(ids, p.ID)
				n++
			}
		}
		if n == 0 {
			return nil, &UnknownSelectionError{What: "group", Ref: g}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
