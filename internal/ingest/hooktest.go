package ingest

import (
	"context"
	"fmt"

	"github.com/labtrail/labtrail/internal/gitlab"
)

// HookAPI is what testing webhooks needs from the GitLab client.
type HookAPI interface {
	ProjectHooks(ctx context.Context, p gitlab.Project) ([]gitlab.Hook, error)
	TestProjectHook(ctx context.Context, p gitlab.Project, hookID int64, trigger string) error
}

// HookTestResult is the outcome of one project's webhook test.
type HookTestResult struct {
	Project string `json:"project"`
	HookID  int64  `json:"hook_id,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// TestHooks asks GitLab to send a test push event through every webhook of
// projects that points at url, so the whole path (GitLab, network,
// labtrail's verification and storage) is checked: GitLab reports success
// only when labtrail answered 2xx, which it does once the delivery is
// stored. A project with no such webhook is a failure.
func TestHooks(ctx context.Context, gl HookAPI, projects []gitlab.Project, url string) []HookTestResult {
	var out []HookTestResult
	for _, p := range projects {
		hooks, err := gl.ProjectHooks(ctx, p)
		if err != nil {
			out = append(out, HookTestResult{Project: p.Path, Error: err.Error()})
			continue
		}
		tested := false
		for _, h := range hooks {
			if h.URL != url {
				continue
			}
			tested = true
			r := HookTestResult{Project: p.Path, HookID: h.ID, OK: true}
			if err := gl.TestProjectHook(ctx, p, h.ID, "push_events"); err != nil {
				r.OK, r.Error = false, err.Error()
			}
			out = append(out, r)
		}
		if !tested {
			out = append(out, HookTestResult{Project: p.Path, Error: fmt.Sprintf("no webhook to %s (run labtrail hooks install)", url)})
		}
	}
	return out
}
