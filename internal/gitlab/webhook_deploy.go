package gitlab

import (
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

type releaseHook struct {
	CreatedAt   hookTime `json:"created_at"`
	ReleasedAt  hookTime `json:"released_at"`
	Description string   `json:"description"`
	Name        string   `json:"name"`
	Tag         string   `json:"tag"`
	URL         string   `json:"url"`
	Action      string   `json:"action"`
	Assets      struct {
		Links []struct {
			Name     string `json:"name"`
			URL      string `json:"url"`
			LinkType string `json:"link_type"`
		} `json:"links"`
		Sources []struct{} `json:"sources"`
	} `json:"assets"`
	Commit *struct {
		ID string `json:"id"`
	} `json:"commit"`
}

func (rh *releaseHook) check() error {
	if rh.Tag == "" {
		return malformed("release without tag")
	}
	if latest(rh.CreatedAt.Time, rh.ReleasedAt.Time).IsZero() {
		return malformed("release %s without created_at", rh.Tag)
	}
	return nil
}

// parseRelease: the release; updated_at is the later of created_at and
// released_at, as for the poller. A deleted release keeps no time of its
// deletion in the payload; it is dated when parsed, so that it wins over
// the release's last state.
func parseRelease(h *hookCtx, rh *releaseHook) error {
	created, released := rh.CreatedAt.Time, rh.ReleasedAt.Time
	updated := latest(created, released)
	now := webhookNow().UTC()
	upcoming := released.After(now)
	state := "published"
	if upcoming {
		state = "upcoming"
	}
	links := make([]map[string]any, 0, len(rh.Assets.Links))
	for _, l := range rh.Assets.Links {
		links = append(links, map[string]any{"name": l.Name, "url": l.URL, "link_type": l.LinkType})
	}
	ts := []change.Transition{{State: "created", At: created}}
	occurred := created
	if !upcoming && !released.IsZero() {
		ts = append(ts, change.Transition{State: "published", At: released})
		occurred = released
	}
	if rh.Action == "delete" {
		state, updated, occurred = "deleted", now, now
		ts = append(ts, change.Transition{State: "deleted", At: now})
	}
	sha := ""
	if rh.Commit != nil {
		sha = rh.Commit.ID
	}
	h.emit(change.Event{
		ID: change.ReleaseID(h.p.ID, rh.Tag), Kind: change.KindRelease, ProjectID: h.p.ID,
		Title: firstNonEmpty(rh.Name, rh.Tag), State: state, WebURL: rh.URL,
		Ref: rh.Tag, SHA: sha,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: occurred,
		Attrs: map[string]any{
			"name": rh.Name, "tag_name": rh.Tag, "description": rh.Description,
			"released_at": stampOrNil(released), "created_at": stampOrNil(created),
			"upcoming_release": upcoming, "links": links,
			"sources_count": len(rh.Assets.Sources), "action": rh.Action,
		},
		Transitions: ts,
	})
	return nil
}

type deploymentHook struct {
	Status                 string    `json:"status"`
	StatusChangedAt        hookTime  `json:"status_changed_at"`
	DeploymentID           int64     `json:"deployment_id"`
	DeployableID           int64     `json:"deployable_id"`
	DeployableURL          string    `json:"deployable_url"`
	Environment            string    `json:"environment"`
	EnvironmentSlug        string    `json:"environment_slug"`
	EnvironmentExternalURL string    `json:"environment_external_url"`
	ShortSHA               string    `json:"short_sha"`
	User                   *hookUser `json:"user"`
	CommitURL              string    `json:"commit_url"`
	CommitTitle            string    `json:"commit_title"`
	Ref                    string    `json:"ref"`
}

func (dh *deploymentHook) check() error {
	if dh.DeploymentID == 0 {
		return malformed("deployment hook without deployment_id")
	}
	return nil
}

// parseDeployment: the deployment. status_changed_at (GitLab 14.0+) is
// when GitLab moved the deployment to status, the moment its updated_at
// is also set, so it stands in for updated_at. The payload lacks the
// deployment's iid, created_at and environment id, so the deployment is
// always listed in NeedsDetails.
func parseDeployment(h *hookCtx, dh *deploymentHook) error {
	id := change.DeploymentID(h.p.ID, dh.DeploymentID)
	h.needs(id)
	at := dh.StatusChangedAt.Time
	if at.IsZero() {
		// GitLab before 14.0: no time at all.
		return nil
	}
	sha := ""
	if i := strings.LastIndex(dh.CommitURL, "/commit/"); i >= 0 {
		sha = dh.CommitURL[i+len("/commit/"):]
	}
	final := finalStatus(dh.Status)
	attrs := map[string]any{
		"environment":              dh.Environment,
		"environment_slug":         dh.EnvironmentSlug,
		"environment_external_url": dh.EnvironmentExternalURL,
		"status":                   dh.Status,
		"status_changed_at":        stamp(at),
		"short_sha":                dh.ShortSHA,
		"commit_title":             dh.CommitTitle,
	}
	if final {
		attrs["finished_at"] = stamp(at)
	}
	if dh.DeployableID != 0 {
		attrs["deployable"] = map[string]any{"id": dh.DeployableID, "web_url": dh.DeployableURL}
	}
	var created time.Time
	if dh.Status == "created" {
		created = at
	}
	h.emit(change.Event{
		ID: id, Kind: change.KindDeployment, ProjectID: h.p.ID,
		Title: "Deployment to " + dh.Environment, State: dh.Status,
		Author: dh.User.username(), WebURL: dh.DeployableURL, Ref: dh.Ref, SHA: sha,
		CreatedAt: created, UpdatedAt: at, OccurredAt: at,
		Attrs: attrs, Transitions: []change.Transition{{State: dh.Status, At: at}},
	})
	return nil
}
