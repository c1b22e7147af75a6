package change

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeploymentReport is a deployment as a CI job or a deploy tool reports it
// to labtrail's API (POST /api/v1/deployments), for deployments GitLab
// never hears of. `labtrail ci report` sends one.
type DeploymentReport struct {
	// Project is the project's id or its path (group/app).
	Project     ProjectRef `json:"project"`
	Environment string     `json:"environment"`
	Ref         string     `json:"ref,omitempty"`
	SHA         string     `json:"sha,omitempty"`
	// Status is running, success, failed or canceled.
	Status     string     `json:"status"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// URL is where the deployment can be reached (the environment's
	// external URL).
	URL      string `json:"url,omitempty"`
	Deployer string `json:"deployer,omitempty"`
	// JobURL is the reporting job's page.
	JobURL     string `json:"job_url,omitempty"`
	PipelineID int64  `json:"pipeline_id,omitempty"`
	JobID      int64  `json:"job_id,omitempty"`
	// Action is deploy (the default) or stop, which marks the
	// environment stopped.
	Action string `json:"action,omitempty"`
}

// ProjectRef is a project named by its id (a JSON number or a string of
// digits) or by its path.
type ProjectRef string

// UnmarshalJSON takes a number or a string.
func (p *ProjectRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = ProjectRef(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("project must be an id or a path")
	}
	if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
		return fmt.Errorf("project id %s is not a whole number", n)
	}
	*p = ProjectRef(n)
	return nil
}

// Deployment statuses a report may carry: those of GitLab's deployments
// that a reporter can know.
var reportStatuses = []string{"running", "success", "failed", "canceled"}

// FieldError says which field of a report is wrong and why.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Check reports the first field of r that is missing or malformed, as a
// *FieldError. The project is checked for presence only: whether labtrail
// syncs it is the caller's question.
func (r *DeploymentReport) Check() error {
	r.Environment = strings.TrimSpace(r.Environment)
	r.SHA = strings.ToLower(strings.TrimSpace(r.SHA))
	r.Action = strings.TrimSpace(r.Action)
	switch {
	case strings.TrimSpace(string(r.Project)) == "":
		return fieldErr("project", "required: the project's id or path, as group/app")
	case r.Environment == "":
		return fieldErr("environment", "required")
	case name("environment", r.Environment) != nil:
		return fieldErr("environment", "%v", name("environment", r.Environment))
	case len(r.Environment) > 255:
		return fieldErr("environment", "longer than 255 characters")
	case r.Status == "":
		return fieldErr("status", "required: one of %s", strings.Join(reportStatuses, ", "))
	case !slices.Contains(reportStatuses, r.Status):
		return fieldErr("status", "%q is not one of %s", r.Status, strings.Join(reportStatuses, ", "))
	case r.Action != "" && r.Action != "deploy" && r.Action != "stop":
		return fieldErr("action", "%q is not deploy or stop", r.Action)
	case r.SHA != "" && sha(r.SHA) != nil:
		return fieldErr("sha", "%v", sha(r.SHA))
	case r.JobID < 0:
		return fieldErr("job_id", "must be positive")
	case r.PipelineID < 0:
		return fieldErr("pipeline_id", "must be positive")
	case r.JobID == 0 && r.SHA == "":
		return fieldErr("sha", "required when there is no job_id: one of them names the deployment")
	case r.Ref != "" && name("ref", r.Ref) != nil:
		return fieldErr("ref", "%v", name("ref", r.Ref))
	}
	for _, u := range []struct{ field, v string }{{"url", r.URL}, {"job_url", r.JobURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fieldErr(u.field, "%q is not an http or https URL", u.v)
		}
	}
	if r.StartedAt != nil && r.FinishedAt != nil && r.FinishedAt.Before(*r.StartedAt) {
		return fieldErr("finished_at", "before started_at")
	}
	return nil
}

// FinalStatus reports whether a deployment in status has ended.
func FinalStatus(status string) bool {
	return status == "success" || status == "failed" || status == "canceled"
}

// Key is what names the reported deployment among the project's and
// environment's: the job's id, else the sha.
func (r *DeploymentReport) Key() string {
	if r.JobID > 0 {
		return strconv.FormatInt(r.JobID, 10)
	}
	return r.SHA
}

// Events are the deployment event r stands for, of project id at path,
// received at now, and its environment's. The deployment's updated_at is
// the latest time the report gives (finished_at, else started_at), so
// an older report never overwrites a newer one; a report that gives
// none is dated now. An action stop reports the environment stopped.
func (r *DeploymentReport) Events(projectID int64, path string, now time.Time) (deployment, environment Event) {
	now = now.UTC()
	var started, finished time.Time
	if r.StartedAt != nil {
		started = r.StartedAt.UTC()
	}
	if r.FinishedAt != nil {
		finished = r.FinishedAt.UTC()
	}
	final := FinalStatus(r.Status)
	if final && finished.IsZero() {
		finished = now
	}
	if !final {
		finished = time.Time{}
		if started.IsZero() {
			started = now
		}
	}
	created := started
	if created.IsZero() {
		created = finished
	}
	updated, occurred := started, started
	if final {
		updated, occurred = finished, finished
	}
	action := r.Action
	if action == "" {
		action = "deploy"
	}
	ts := []Transition{{State: "created", At: created}}
	if !started.IsZero() {
		ts = append(ts, Transition{State: "running", At: started})
	}
	if final {
		ts = append(ts, Transition{State: r.Status, At: finished})
	}
	attrs := map[string]any{
		"environment": r.Environment,
		"status":      r.Status,
		"action":      action,
		"finished_at": nil,
		"url":         r.URL,
		"reported":    true,
	}
	if final {
		attrs["finished_at"] = finished.Format(time.RFC3339Nano)
	}
	if r.PipelineID > 0 {
		attrs["pipeline_id"] = r.PipelineID
	}
	if r.JobID > 0 {
		// The shape of GitLab's deployable, which links this report to
		// GitLab's own deployment of the same job.
		attrs["deployable"] = map[string]any{"id": r.JobID, "web_url": r.JobURL, "pipeline_id": r.PipelineID}
	}
	verb := "Deployment"
	if action == "stop" {
		verb = "Stop"
	}
	deployment = Event{
		ID: ReportedDeploymentID(projectID, r.Environment, r.Key()), Kind: KindDeployment,
		ProjectID: projectID, ProjectPath: path,
		Title: verb + " to " + r.Environment + " (reported)", State: r.Status, Author: r.Deployer,
		WebURL: r.JobURL, Ref: r.Ref, SHA: r.SHA,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: occurred,
		Source: SourceAPI, ObservedAt: now, Attrs: attrs, Transitions: ts,
	}
	state := "available"
	if action == "stop" && r.Status == "success" {
		state = "stopped"
	}
	envAttrs := map[string]any{"name": r.Environment, "tier": GuessTier(r.Environment), "state": state, "reported": true}
	if r.URL != "" && action == "deploy" {
		envAttrs["external_url"] = r.URL
	}
	environment = Event{
		ID: ReportedEnvironmentID(projectID, r.Environment), Kind: KindEnvironment,
		ProjectID: projectID, ProjectPath: path, Title: r.Environment, State: state,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: updated,
		Source: SourceAPI, ObservedAt: now, Attrs: envAttrs,
		Transitions: []Transition{{State: "created", At: created}, {State: state, At: updated}},
	}
	return deployment, environment
}

// GuessTier is the deployment tier GitLab gives an environment created
// without one, from its name by the patterns of GitLab's Environment
// model (guess_tier), tried in this order: development, testing,
// staging, production, else other.
func GuessTier(name string) string {
	for _, t := range tierGuesses {
		if t.re.MatchString(name) {
			return t.tier
		}
	}
	return "other"
}

var tierGuesses = []struct {
	tier string
	re   *regexp.Regexp
}{
	{"development", regexp.MustCompile(`(?i)(dev|review|trunk)`)},
	{"testing", regexp.MustCompile(`(?i)(test|tst|int|ac(ce|)pt|qa|qc|control|quality)`)},
	{"staging", regexp.MustCompile(`(?i)(st(a|)g|mod(e|)l|pre|demo|non)`)},
	{"production", regexp.MustCompile(`(?i)(pr(o|)d|live)`)},
}
