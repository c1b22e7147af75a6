package gitlab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// Hook is a project webhook as GitLab lists it. GitLab never returns a
// hook's secret token.
type Hook struct {
	ID        int64
	ProjectID int64
	URL       string
	// Events are the enabled events by GitLab's attribute names without
	// "_events": "push", "tag_push", "merge_requests", ...
	Events    []string
	EnableSSL bool
	CreatedAt time.Time
}

// HookEvents are the events labtrail subscribes its hook to: every kind it
// stores, and the ones it keeps raw (wiki, feature flag, emoji).
var HookEvents = []string{
	"push", "tag_push", "merge_requests", "issues", "confidential_issues", "note",
	"confidential_note", "job", "pipeline", "deployment", "releases", "wiki_page",
	"feature_flag", "emoji",
}

func hookFrom(h *gl.ProjectHook) Hook {
	out := Hook{ID: h.ID, ProjectID: h.ProjectID, URL: h.URL, EnableSSL: h.EnableSSLVerification, CreatedAt: utc(h.CreatedAt)}
	for _, e := range []struct {
		name string
		on   bool
	}{
		{"push", h.PushEvents}, {"tag_push", h.TagPushEvents}, {"merge_requests", h.MergeRequestsEvents},
		{"issues", h.IssuesEvents}, {"confidential_issues", h.ConfidentialIssuesEvents}, {"note", h.NoteEvents},
		{"confidential_note", h.ConfidentialNoteEvents}, {"job", h.JobEvents}, {"pipeline", h.PipelineEvents},
		{"deployment", h.DeploymentEvents}, {"releases", h.ReleasesEvents}, {"wiki_page", h.WikiPageEvents},
		{"milestone", h.MilestoneEvents}, {"feature_flag", h.FeatureFlagEvents}, {"emoji", h.EmojiEvents},
		{"repository_update", h.RepositoryUpdateEvents}, {"resource_access_token", h.ResourceAccessTokenEvents},
	} {
		if e.on {
			out.Events = append(out.Events, e.name)
		}
	}
	return out
}

// hookCall runs a webhook request for p and words a 403 for what managing
// webhooks needs: the Maintainer role, and a token with the api scope.
func (c *Client) hookCall(ctx context.Context, p Project, what string, fn func(...gl.RequestOptionFunc) (*gl.Response, error)) (*gl.Response, error) {
	return c.writeCall(ctx, p, what, "manage webhooks", "Maintainer", fn)
}

// writeCall runs a request for p that needs more than reading, and words a
// 403 for what purpose needs: the role given, and a token with the api
// scope.
func (c *Client) writeCall(ctx context.Context, p Project, what, purpose, role string, fn func(...gl.RequestOptionFunc) (*gl.Response, error)) (*gl.Response, error) {
	resp, err := c.call(ctx, fmt.Sprintf("%s of %s", what, p.selector()), p.selector(), fn)
	var e *apiError
	if err == nil || !errors.As(err, &e) || e.kind != ErrForbidden {
		return resp, err
	}
	if e.scope {
		out := c.fail(ErrForbidden, "GitLab token lacks the api scope needed to %s (403 insufficient_scope): create a token with the api scope", purpose)
		out.scope, out.status = true, e.status
		return resp, out
	}
	out := c.fail(ErrForbidden, "token needs %s role on %s to %s (403 Forbidden)", role, p.selector(), purpose)
	out.status = e.status
	return resp, out
}

// ProjectHooks lists p's webhooks.
func (c *Client) ProjectHooks(ctx context.Context, p Project) ([]Hook, error) {
	var out []Hook
	err := walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.ProjectHook, *gl.Response, error) {
		var hs []*gl.ProjectHook
		resp, err := c.hookCall(ctx, p, "webhooks", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			opt := &gl.ListProjectHooksOptions{ListOptions: gl.ListOptions{Page: page, PerPage: perPage}}
			hs, resp, err = c.gl.Projects.ListProjectHooks(p.ref(), opt, append(o, extra...)...)
			return resp, err
		})
		return hs, resp, err
	}, func(hs []*gl.ProjectHook) error {
		for _, h := range hs {
			out = append(out, hookFrom(h))
		}
		return nil
	})
	return out, err
}

// EnsureProjectHook makes p have one webhook to url with secret as its
// token and HookEvents enabled: a hook with that URL is updated, else one
// is added. Other hooks are left alone. created reports which happened.
func (c *Client) EnsureProjectHook(ctx context.Context, p Project, url, secret string) (hook Hook, created bool, err error) {
	url = strings.TrimSpace(url)
	if url == "" {
		return Hook{}, false, errors.New("gitlab: webhook URL is empty")
	}
	hooks, err := c.ProjectHooks(ctx, p)
	if err != nil {
		return Hook{}, false, err
	}
	on := true
	ev := func(name string) *bool {
		for _, e := range HookEvents {
			if e == name {
				return &on
			}
		}
		return nil
	}
	var h *gl.ProjectHook
	for _, old := range hooks {
		if old.URL != url {
			continue
		}
		opt := &gl.EditProjectHookOptions{
			URL: &url, Token: &secret,
			PushEvents: ev("push"), TagPushEvents: ev("tag_push"), MergeRequestsEvents: ev("merge_requests"),
			IssuesEvents: ev("issues"), ConfidentialIssuesEvents: ev("confidential_issues"), NoteEvents: ev("note"),
			ConfidentialNoteEvents: ev("confidential_note"), JobEvents: ev("job"), PipelineEvents: ev("pipeline"),
			DeploymentEvents: ev("deployment"), ReleasesEvents: ev("releases"), WikiPageEvents: ev("wiki_page"),
			FeatureFlagEvents: ev("feature_flag"), EmojiEvents: ev("emoji"),
		}
		_, err = c.hookCall(ctx, p, "the webhook", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			h, resp, err = c.gl.Projects.EditProjectHook(p.ref(), old.ID, opt, o...)
			return resp, err
		})
		if err != nil {
			return Hook{}, false, err
		}
		return hookFrom(h), false, nil
	}
	opt := &gl.AddProjectHookOptions{
		URL: &url, Token: &secret, EnableSSLVerification: &on,
		PushEvents: ev("push"), TagPushEvents: ev("tag_push"), MergeRequestsEvents: ev("merge_requests"),
		IssuesEvents: ev("issues"), ConfidentialIssuesEvents: ev("confidential_issues"), NoteEvents: ev("note"),
		ConfidentialNoteEvents: ev("confidential_note"), JobEvents: ev("job"), PipelineEvents: ev("pipeline"),
		DeploymentEvents: ev("deployment"), ReleasesEvents: ev("releases"), WikiPageEvents: ev("wiki_page"),
		FeatureFlagEvents: ev("feature_flag"), EmojiEvents: ev("emoji"),
	}
	_, err = c.hookCall(ctx, p, "a new webhook", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		h, resp, err = c.gl.Projects.AddProjectHook(p.ref(), opt, o...)
		return resp, err
	})
	if err != nil {
		return Hook{}, false, err
	}
	return hookFrom(h), true, nil
}

// TestProjectHook asks GitLab to send a sample event of trigger
// ("push_events", "tag_push_events", ...) to p's hook hookID now. GitLab
// answers 422 when the hook's URL fails; the error then carries its
// message.
func (c *Client) TestProjectHook(ctx context.Context, p Project, hookID int64, trigger string) error {
	_, err := c.hookCall(ctx, p, fmt.Sprintf("a test %s of webhook %d", trigger, hookID), func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		return c.gl.Projects.TriggerTestProjectHook(p.ref(), hookID, gl.ProjectHookEvent(trigger), o...)
	})
	return err
}
