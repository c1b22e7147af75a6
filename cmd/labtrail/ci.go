package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/ci"
	"github.com/labtrail/labtrail/internal/change"
)

// ciRetryWait is the wait before the first retry of a report; it doubles
// for each further one. Tests shorten it.
var ciRetryWait = time.Second

// ciVars are the variables `labtrail ci report` reads, each with the flag
// that overrides it: GitLab's predefined CI/CD variables, and labtrail's
// address and deploy token.
var ciVars = []struct{ flag, env, help string }{
	{"labtrail-url", "LABTRAIL_URL", "labtrail's address, as https://labtrail.example.com"},
	{"token", "LABTRAIL_DEPLOY_TOKEN", "an API token of scope deploy (labtrail tokens create --scope deploy)"},
	{"project", "CI_PROJECT_ID", "the project's id or path (default CI_PROJECT_ID, else CI_PROJECT_PATH)"},
	{"sha", "CI_COMMIT_SHA", "the commit deployed"},
	{"ref", "CI_COMMIT_REF_NAME", "the branch or tag deployed"},
	{"environment", "CI_ENVIRONMENT_NAME", "the environment deployed to"},
	{"url", "CI_ENVIRONMENT_URL", "where the deployment is reached"},
	{"action", "CI_ENVIRONMENT_ACTION", "deploy or stop (GitLab's start reads as deploy)"},
	{"job-id", "CI_JOB_ID", "the deploying job's id"},
	{"job-url", "CI_JOB_URL", "the deploying job's page"},
	{"pipeline-id", "CI_PIPELINE_ID", "the pipeline's id"},
	{"deployer", "GITLAB_USER_LOGIN", "who deployed"},
	{"started-at", "CI_JOB_STARTED_AT", "when the deployment started (RFC 3339)"},
	{"status", "CI_JOB_STATUS", "running, success, failed or canceled (default: CI_JOB_STATUS in after_script, else running)"},
}

func runCI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && args[0] == "template" {
		// The GitLab CI template, for a project that cannot include it
		// remotely: labtrail ci template > labtrail.gitlab-ci.yml
		_, err := stdout.Write(ci.Template)
		return err
	}
	if len(args) == 0 || args[0] != "report" {
		fmt.Fprintln(stderr, "Usage: labtrail ci report [flags] | labtrail ci template   (labtrail ci report --help for its flags)")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	return runCIReport(ctx, args[1:], stdout, stderr)
}

// runCIReport reports the deployment of the CI job it runs in to labtrail.
// Reporting never fails a deploy: a report that cannot be made (labtrail
// unreachable, a setting missing, an answer other than 2xx) is a warning
// and exit 0, unless --strict.
func runCIReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ci report", "ci report [flags]", stderr)
	vals := map[string]*string{}
	for _, v := range ciVars {
		vals[v.flag] = fs.String(v.flag, "", v.help+" [$"+v.env+"]")
	}
	finished := fs.String("finished-at", "", "when the deployment finished (RFC 3339; default now, for a final status)")
	strict := fs.Bool("strict", false, "exit 1 when the report cannot be made, instead of a warning and exit 0")
	retries := fs.Int("retries", 3, "attempts to reach labtrail before giving up")
	timeout := fs.Duration("timeout", 10*time.Second, "the longest one attempt waits for labtrail")
	if err := parse(fs, args); err != nil {
		return err
	}
	get := func(name string) string {
		if v := strings.TrimSpace(*vals[name]); v != "" {
			return v
		}
		for _, v := range ciVars {
			if v.flag == name {
				return strings.TrimSpace(os.Getenv(v.env))
			}
		}
		return ""
	}
	fail := func(err error) error {
		if *strict {
			return err
		}
		fmt.Fprintf(stderr, "labtrail ci report: WARNING: the deployment was not reported to labtrail: %v\n", err)
		fmt.Fprintln(stderr, "labtrail ci report: the job goes on (pass --strict to fail it instead)")
		return nil
	}
	rep, skip, err := ciReport(get, *finished, time.Now())
	if err != nil {
		return fail(err)
	}
	if skip != "" {
		fmt.Fprintln(stdout, "labtrail ci report: nothing to report:", skip)
		return nil
	}
	base, token := get("labtrail-url"), get("token")
	if base == "" {
		return fail(errors.New("labtrail's address is not set: set LABTRAIL_URL or pass --labtrail-url"))
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(fmt.Errorf("LABTRAIL_URL %q is not an http or https URL", base))
	}
	if token == "" {
		fmt.Fprintln(stderr, "labtrail ci report: LABTRAIL_DEPLOY_TOKEN is not set; reporting without a token (only a server without access control takes it)")
	}
	ev, err := postCIReport(ctx, strings.TrimRight(base, "/")+"/api/v1/deployments", token, rep, max(*retries, 1), *timeout, stderr)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "labtrail ci report: reported %s (%s) to %s\n", ev.ID, ev.State, rep.Environment)
	return nil
}

// ciReport builds the report from the settings get reads; skip says why
// there is nothing to report (an environment action that deploys
// nothing).
func ciReport(get func(string) string, finished string, now time.Time) (change.DeploymentReport, string, error) {
	r := change.DeploymentReport{
		Environment: get("environment"), Ref: get("ref"), SHA: get("sha"), URL: get("url"),
		Deployer: get("deployer"), JobURL: get("job-url"),
	}
	project := get("project")
	if project == "" {
		project = os.Getenv("CI_PROJECT_PATH")
	}
	r.Project = change.ProjectRef(project)
	if r.Environment == "" {
		return r, "", errors.New("no environment: run it in a job with an environment (CI_ENVIRONMENT_NAME) or pass --environment")
	}
	switch a := get("action"); a {
	case "", "start", "deploy":
		r.Action = "deploy"
	case "stop":
		r.Action = "stop"
	case "prepare", "verify", "access":
		return r, "the job's environment action is " + a + ", which deploys nothing", nil
	default:
		return r, "", fmt.Errorf("action %q is not deploy or stop", a)
	}
	switch s := get("status"); s {
	case "":
		r.Status = "running"
	case "canceling":
		r.Status = "canceled"
	default:
		r.Status = s
	}
	for _, n := range []struct {
		name string
		dst  *int64
	}{{"job-id", &r.JobID}, {"pipeline-id", &r.PipelineID}} {
		if v := get(n.name); v != "" {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				return r, "", fmt.Errorf("%s %q is not a positive number", n.name, v)
			}
			*n.dst = id
		}
	}
	for _, t := range []struct {
		name, v string
		dst     **time.Time
	}{{"started-at", get("started-at"), &r.StartedAt}, {"finished-at", finished, &r.FinishedAt}} {
		if t.v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return r, "", fmt.Errorf("%s %q is not an RFC 3339 time", t.name, t.v)
		}
		*t.dst = &at
	}
	if change.FinalStatus(r.Status) && r.FinishedAt == nil {
		n := now.UTC()
		r.FinishedAt = &n
	}
	if r.StartedAt != nil && r.FinishedAt != nil && r.FinishedAt.Before(*r.StartedAt) {
		// Clocks of the runner and GitLab differ by a little.
		r.StartedAt = r.FinishedAt
	}
	return r, "", r.Check()
}

// postCIReport sends rep, trying again (after ciRetryWait, doubled each
// time) when labtrail cannot be reached or answers 429 or 5xx.
func postCIReport(ctx context.Context, endpoint, token string, rep change.DeploymentReport, attempts int,
	timeout time.Duration, stderr io.Writer) (change.Event, error) {
	body, err := json.Marshal(rep)
	if err != nil {
		return change.Event{}, err
	}
	client := &http.Client{Timeout: timeout}
	wait := ciRetryWait
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			fmt.Fprintf(stderr, "labtrail ci report: %v; trying again in %s\n", last, wait)
			select {
			case <-ctx.Done():
				return change.Event{}, ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		ev, retry, err := postOnce(ctx, client, endpoint, token, body)
		if err == nil || !retry {
			return ev, err
		}
		last = err
	}
	return change.Event{}, fmt.Errorf("labtrail cannot be reached at %s after %d attempts: %w", endpoint, attempts, last)
}

func postOnce(ctx context.Context, client *http.Client, endpoint, token string, body []byte) (ev change.Event, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return ev, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "labtrail-ci/"+version)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return ev, true, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, &ev); err != nil {
			return ev, false, fmt.Errorf("labtrail answered %s with a body that is not a deployment: %w", resp.Status, err)
		}
		return ev, false, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	msg := fmt.Sprintf("labtrail answered %s", resp.Status)
	if e.Error != "" {
		msg += ": " + e.Error
	}
	return ev, resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, errors.New(msg)
}
