package ci

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// GitLab's CI/CD YAML syntax reference: the keywords a job, its
// environment and its rules take.
var (
	jobKeywords = words(`after_script allow_failure artifacts before_script cache coverage dast_configuration dependencies
		environment extends hooks identity id_tokens image inherit interruptible manual_confirmation needs pages parallel
		release resource_group retry rules run script secrets services stage tags timeout trigger variables when`)
	environmentKeywords = words(`name url on_stop action auto_stop_in kubernetes deployment_tier`)
	ruleKeywords        = words(`if changes exists allow_failure needs variables when interruptible`)
	environmentActions  = words(`start prepare stop verify access`)
	whens               = words(`on_success on_failure never always manual delayed`)
	// The default stages, as a file without stages: has them.
	defaultStages = []string{".pre", "build", "test", "deploy", ".post"}
)

func words(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

func loadTemplate(t *testing.T) (map[string]Job, map[string]any) {
	t.Helper()
	data, err := os.ReadFile("labtrail.gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(Template) {
		t.Fatal("the embedded template is not the file's")
	}
	jobs, vars, err := Jobs(data)
	if err != nil {
		t.Fatalf("the template is not valid YAML: %v", err)
	}
	return jobs, vars
}

// visible are the jobs GitLab runs: those not hidden by a leading dot.
func visible(jobs map[string]Job) []string {
	var out []string
	for name := range jobs {
		if !strings.HasPrefix(name, ".") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestTemplateReferencesResolve(t *testing.T) {
	jobs, vars := loadTemplate(t)
	for _, hidden := range []string{".labtrail-deploy", ".labtrail-stop"} {
		if _, ok := jobs[hidden]; !ok {
			t.Errorf("the template lacks the hidden job %s to extend", hidden)
		}
	}
	resolved := map[string]Job{}
	for name, j := range jobs {
		for k := range j {
			if !jobKeywords[k] {
				t.Errorf("job %s: %q is not a job keyword", name, k)
			}
		}
		r, err := Resolve(jobs, name)
		if err != nil {
			t.Errorf("job %s: %v", name, err)
			continue
		}
		resolved[name] = r
	}
	stageOf := map[string]int{}
	for _, name := range visible(jobs) {
		j := resolved[name]
		stage, _ := j["stage"].(string)
		if stage == "" {
			stage = "test"
		}
		i := slices.Index(defaultStages, stage)
		if i < 0 {
			t.Errorf("job %s: stage %q is not a default stage (the template sets no stages:)", name, stage)
		}
		stageOf[name] = i
		if len(Lines(j["script"])) == 0 {
			t.Errorf("job %s has no script", name)
		}
		if w, ok := j["when"].(string); ok && !whens[w] {
			t.Errorf("job %s: when %q", name, w)
		}
	}
	for _, name := range visible(jobs) {
		j := resolved[name]
		// needs: names or {job: name} of visible jobs of this stage or an
		// earlier one.
		needs, _ := j["needs"].([]any)
		for _, n := range needs {
			need, _ := n.(string)
			if m, ok := n.(map[string]any); ok {
				need, _ = m["job"].(string)
			}
			if _, ok := stageOf[need]; !ok {
				t.Errorf("job %s needs %q, which is not a visible job of the template", name, need)
			} else if stageOf[need] > stageOf[name] {
				t.Errorf("job %s needs %s of a later stage", name, need)
			}
		}
		rules, _ := j["rules"].([]any)
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			for k := range rm {
				if !ruleKeywords[k] {
					t.Errorf("job %s: rule keyword %q", name, k)
				}
			}
			if w, ok := rm["when"].(string); ok && !whens[w] {
				t.Errorf("job %s: rule when %q", name, w)
			}
		}
		env, ok := j["environment"].(map[string]any)
		if !ok {
			continue
		}
		for k := range env {
			if !environmentKeywords[k] {
				t.Errorf("job %s: environment keyword %q", name, k)
			}
		}
		envName, _ := env["name"].(string)
		if envName == "" {
			t.Errorf("job %s: environment without a name", name)
		}
		action, _ := env["action"].(string)
		if action != "" && !environmentActions[action] {
			t.Errorf("job %s: environment action %q", name, action)
		}
		// on_stop: a visible job that stops this environment, with the
		// same rules (GitLab runs it only if it was created with the
		// deploy job), in this stage or a later one.
		if stop, ok := env["on_stop"].(string); ok {
			sj, found := resolved[stop]
			switch {
			case !found || strings.HasPrefix(stop, "."):
				t.Errorf("job %s: on_stop %q is not a visible job of the template", name, stop)
				continue
			case stageOf[stop] < stageOf[name]:
				t.Errorf("job %s: on_stop %s is of an earlier stage", name, stop)
			}
			senv, _ := sj["environment"].(map[string]any)
			if senv["name"] != envName || senv["action"] != "stop" {
				t.Errorf("job %s: on_stop %s has environment %v, want %s with action stop", name, stop, senv, envName)
			}
			if ifs(j) != ifs(sj) {
				t.Errorf("job %s and its stop job %s have other rules: %q and %q", name, stop, ifs(j), ifs(sj))
			}
			if sj["variables"].(map[string]any)["GIT_STRATEGY"] != "none" {
				t.Errorf("stop job %s checks out the branch, which may be gone", stop)
			}
		}
	}
	// Every LABTRAIL_ variable used is declared, except the two the
	// project sets as CI/CD variables.
	used := regexp.MustCompile(`\$\{?(LABTRAIL_[A-Z_]+)`).FindAllStringSubmatch(string(Template), -1)
	for _, u := range used {
		if _, ok := vars[u[1]]; !ok && u[1] != "LABTRAIL_URL" && u[1] != "LABTRAIL_DEPLOY_TOKEN" {
			t.Errorf("$%s is used but not declared in variables:", u[1])
		}
	}
}

// ifs are a job's rules' if expressions.
func ifs(j Job) string {
	rules, _ := j["rules"].([]any)
	var out []string
	for _, r := range rules {
		rm, _ := r.(map[string]any)
		s, _ := rm["if"].(string)
		out = append(out, s)
	}
	return strings.Join(out, " | ")
}

// The example pipeline is seed 002's: production on the default branch,
// automatic; review/$CI_COMMIT_REF_SLUG elsewhere with a manual stop and
// auto_stop_in; each job reporting running before its deploy step and its
// outcome from after_script.
func TestTemplatePipeline(t *testing.T) {
	jobs, _ := loadTemplate(t)
	get := func(name string) Job {
		j, err := Resolve(jobs, name)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	env := func(j Job) map[string]any { m, _ := j["environment"].(map[string]any); return m }
	rule := func(j Job) map[string]any {
		rules, _ := j["rules"].([]any)
		if len(rules) != 1 {
			t.Fatalf("want one rule, got %v", rules)
		}
		return rules[0].(map[string]any)
	}

	prod := get("labtrail-production")
	if env(prod)["name"] != "production" || !strings.Contains(ifs(prod), "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH") ||
		rule(prod)["when"] != nil {
		t.Errorf("production: %v", prod)
	}
	review := get("labtrail-review")
	if env(review)["name"] != "review/$CI_COMMIT_REF_SLUG" || env(review)["auto_stop_in"] == nil ||
		env(review)["on_stop"] != "labtrail-review-stop" || !strings.Contains(ifs(review), "$CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH") {
		t.Errorf("review: %v", review)
	}
	for _, manual := range []string{"labtrail-review-stop", "labtrail-production-stop", "labtrail-staging"} {
		if rule(get(manual))["when"] != "manual" {
			t.Errorf("%s is not a manual action", manual)
		}
	}
	for _, name := range visible(jobs) {
		j := get(name)
		before, after := strings.Join(Lines(j["before_script"]), "\n"), strings.Join(Lines(j["after_script"]), "\n")
		if !strings.Contains(before, "ci report --status running") {
			t.Errorf("%s does not report running before its script: %s", name, before)
		}
		if !strings.Contains(after, "ci report") || strings.Contains(after, "--status") {
			t.Errorf("%s does not report its outcome (CI_JOB_STATUS) from after_script: %s", name, after)
		}
	}
}

// Resolve follows GitLab's extends: deep-merged mappings, replaced lists,
// loops and unknown jobs refused.
func TestResolve(t *testing.T) {
	jobs, _, err := Jobs([]byte(`
.a: {variables: {A: "1", B: "1"}, script: [one], environment: {action: start}}
.b: {extends: .a, variables: {B: "2"}, script: [two]}
c: {extends: [.b], environment: {name: prod}}
loop1: {extends: loop2}
loop2: {extends: loop1}
lost: {extends: .nowhere}
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Resolve(jobs, "c")
	if err != nil {
		t.Fatal(err)
	}
	vars := c["variables"].(map[string]any)
	envm := c["environment"].(map[string]any)
	if vars["A"] != "1" || vars["B"] != "2" || strings.Join(Lines(c["script"]), ",") != "two" ||
		envm["name"] != "prod" || envm["action"] != "start" {
		t.Errorf("resolved c: %v", c)
	}
	if _, err := Resolve(jobs, "loop1"); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Errorf("loop: %v", err)
	}
	if _, err := Resolve(jobs, "lost"); err == nil || !strings.Contains(err.Error(), ".nowhere") {
		t.Errorf("unknown parent: %v", err)
	}
}
