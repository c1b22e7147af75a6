// Package ci holds labtrail's GitLab CI template (labtrail.gitlab-ci.yml),
// which `labtrail ci template` prints, and reads it as GitLab does: its jobs
// with their extends resolved, which the tests check and run.
package ci

import (
	_ "embed"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is ci/labtrail.gitlab-ci.yml.
//
//go:embed labtrail.gitlab-ci.yml
var Template []byte

// Globals are the top-level keys of a GitLab CI file that are not jobs.
var Globals = map[string]bool{
	"default": true, "include": true, "stages": true, "variables": true, "workflow": true,
	"image": true, "services": true, "cache": true, "before_script": true, "after_script": true,
}

// Job is one job's configuration, as YAML decodes it.
type Job = map[string]any

// Jobs reads a GitLab CI file: its jobs (hidden ones, named with a
// leading dot, included) and its top-level variables.
func Jobs(data []byte) (map[string]Job, map[string]any, error) {
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, nil, err
	}
	jobs := map[string]Job{}
	var vars map[string]any
	for k, v := range top {
		if Globals[k] {
			if k == "variables" {
				vars, _ = v.(map[string]any)
			}
			continue
		}
		j, ok := v.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("job %s is not a mapping", k)
		}
		jobs[k] = j
	}
	return jobs, vars, nil
}

// Extends lists the jobs a job extends: extends is a name or a list.
func Extends(j Job) ([]string, error) {
	switch v := j["extends"].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("extends holds %v, not a job name", x)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("extends is %T, not a job name or a list", j["extends"])
}

// maxExtends is GitLab's limit on the depth of extends.
const maxExtends = 11

// Resolve returns job name with what it extends merged in as GitLab does:
// the jobs it extends in order, then its own keys, mappings merged deeply
// and everything else (lists included) replaced.
func Resolve(jobs map[string]Job, name string) (Job, error) {
	return resolve(jobs, name, nil)
}

func resolve(jobs map[string]Job, name string, path []string) (Job, error) {
	for _, p := range path {
		if p == name {
			return nil, fmt.Errorf("extends loops: %s -> %s", strings.Join(path, " -> "), name)
		}
	}
	if len(path) > maxExtends {
		return nil, fmt.Errorf("extends nests deeper than %d: %s", maxExtends, strings.Join(path, " -> "))
	}
	j, ok := jobs[name]
	if !ok {
		if len(path) == 0 {
			return nil, fmt.Errorf("no job %s", name)
		}
		return nil, fmt.Errorf("%s extends %s, which is not a job of the file", path[len(path)-1], name)
	}
	parents, err := Extends(j)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := Job{}
	for _, p := range parents {
		pj, err := resolve(jobs, p, append(path, name))
		if err != nil {
			return nil, err
		}
		out = merge(out, pj)
	}
	own := Job{}
	for k, v := range j {
		if k != "extends" {
			own[k] = v
		}
	}
	return merge(out, own), nil
}

func merge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, bok := out[k].(map[string]any)
		om, ook := v.(map[string]any)
		if bok && ook {
			out[k] = merge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

// Lines reads a script key (script, before_script, after_script): a
// command or a list of them (nested lists flattened, as GitLab does).
func Lines(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, Lines(x)...)
		}
		return out
	}
	return nil
}
