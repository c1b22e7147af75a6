package gitlabsim

import (
	"fmt"
	"strings"
	"time"
)

// Webhook payloads, written from the simulator's own types in the shapes of
// GitLab's webhook_events docs and client-go's testdata/webhooks samples
// (copied to testdata/webhooks; webhook_shapes_test.go holds every payload
// to them). Ids and timestamps are those the REST API serves at the same
// moment. GitLab writes most webhook times as "2006-01-02 15:04:05 UTC";
// the simulator keeps milliseconds in that form ("...05.123 UTC"), which Go's
// time.Parse with the seconds-only layout still accepts, so a receiver ends
// with exactly the poller's updated_at.

type obj = map[string]any

func hookTS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

func isoTS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func gitTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000-07:00") }

func (u *user) email() string { return u.username + "@example.com" }

func (u *user) hookJSON(base string) obj {
	return obj{"id": u.id, "name": u.name, "username": u.username, "avatar_url": *u.basic(base).AvatarURL, "email": u.email()}
}

func usersHook(base string, us []*user) []obj {
	out := make([]obj, 0, len(us))
	for _, u := range us {
		out = append(out, u.hookJSON(base))
	}
	return out
}

func userIDs(us []*user) []int64 {
	out := make([]int64, 0, len(us))
	for _, u := range us {
		out = append(out, u.id)
	}
	return out
}

func (p *project) webURL(base string) string { return base + "/" + p.fullPath() }

func (p *project) hookJSON(base string) obj {
	web := p.webURL(base)
	ssh := "git@" + hostOf(base) + ":" + p.fullPath() + ".git"
	return obj{
		"id": p.id, "name": p.name, "description": p.description, "web_url": web, "avatar_url": nil,
		"git_ssh_url": ssh, "git_http_url": web + ".git", "namespace": p.group.name,
		"visibility_level": 0, "path_with_namespace": p.fullPath(), "default_branch": p.defaultBranch(),
		"ci_config_path": "", "homepage": web, "url": ssh, "ssh_url": ssh, "http_url": web + ".git",
	}
}

func (p *project) repoHook(base string) obj {
	web := p.webURL(base)
	return obj{
		"name": p.name, "url": "git@" + hostOf(base) + ":" + p.fullPath() + ".git", "description": p.description,
		"homepage": web, "git_http_url": web + ".git", "git_ssh_url": "git@" + hostOf(base) + ":" + p.fullPath() + ".git",
		"visibility_level": 0,
	}
}

func labelsHook(p *project, names []string, at time.Time) []obj {
	out := make([]obj, 0, len(names))
	for i, n := range names {
		out = append(out, obj{
			"id": 1000 + int64(i), "title": n, "color": "#428bca", "project_id": p.id,
			"created_at": isoTS(p.createdAt), "updated_at": isoTS(p.createdAt), "template": false,
			"description": "", "type": "GroupLabel", "group_id": p.group.id,
		})
	}
	return out
}

// pushCommit is a commit as push, tag push and release hooks list it.
func (p *project) pushCommit(base string, c commitInfo) obj {
	return obj{
		"id": c.sha, "message": c.message, "title": c.title, "timestamp": gitTime(c.committedAt),
		"url":    p.webURL(base) + "/-/commit/" + c.sha,
		"author": obj{"name": c.author.name, "email": c.author.email()},
		"added":  []string{}, "modified": []string{"README.md"}, "removed": []string{},
	}
}

func (p *project) push(base, kind, ref, before, after string, by *user, commits []commitInfo) obj {
	cs := make([]obj, 0, len(commits))
	for _, c := range commits {
		cs = append(cs, p.pushCommit(base, c))
	}
	out := obj{
		"object_kind": kind, "event_name": kind, "before": before, "after": after, "ref": ref,
		"ref_protected": ref == "refs/heads/"+p.defaultBranch(), "checkout_sha": after,
		"message": nil, "user_id": by.id, "user_name": by.name, "user_username": by.username,
		"user_email": by.email(), "user_avatar": *by.basic("").AvatarURL, "project_id": p.id,
		"project": p.hookJSON(base), "repository": p.repoHook(base), "commits": cs,
		"total_commits_count": len(cs),
	}
	return out
}

// branchPush is the push of m's source branch: its commits before the MR
// opened, or their rebase onto main at the merge (rebase_merge).
func (w *world) branchPush(base string, m *mergeRequest, rebased bool) obj {
	p := m.p
	var cs []commitInfo
	for k := range m.nCommits {
		cs = append(cs, p.commit(commitRef{m: m, k: k, rebased: rebased}))
	}
	before := zeroSHA
	by := m.author
	if rebased {
		before, by = m.sha, m.mergedBy
	}
	return p.push(base, "push", "refs/heads/"+m.sourceBranch, before, cs[len(cs)-1].sha, by, cs)
}

// mainPush is the push to main a merge makes: the rebased commits and the
// merge commit.
func (w *world) mainPush(base string, m *mergeRequest) obj {
	p := m.p
	var cs []commitInfo
	for i := m.mainIdx; i < len(p.main) && p.main[i].c.m == m; i++ {
		cs = append(cs, p.commit(p.main[i].c))
	}
	before := p.shaOf(p.mainRef(m.mainIdx - 1))
	return p.push(base, "push", "refs/heads/"+p.defaultBranch(), before, m.mergeCommitSHA, m.mergedBy, cs)
}

func (w *world) tagPush(base string, p *project, t *gitTag) obj {
	c := p.commit(p.mainRef(t.idx))
	out := p.push(base, "tag_push", "refs/tags/"+t.name, zeroSHA, p.sha(uint64(t.idx)+1<<40, 3), t.author, nil)
	out["checkout_sha"] = c.sha
	delete(out, "ref_protected")
	return out
}

func mrStateID(state string) int {
	switch state {
	case "closed":
		return 2
	case "merged":
		return 3
	}
	return 1
}

func (m *mergeRequest) hookAttrs(base string) obj {
	p := m.p
	head := p.commit(m.head())
	var assignee any
	if len(m.assignees) > 0 {
		assignee = m.assignees[0].id
	}
	out := obj{
		"id": m.id, "iid": m.iid, "target_branch": m.targetBranch, "source_branch": m.sourceBranch,
		"source_project_id": p.id, "target_project_id": p.id, "author_id": m.author.id,
		"assignee_ids": userIDs(m.assignees), "assignee_id": assignee, "reviewer_ids": userIDs(m.reviewers),
		"title": m.title, "created_at": isoTS(m.createdAt), "updated_at": isoTS(m.updatedAt),
		"milestone_id": nil, "state": m.state, "state_id": mrStateID(m.state),
		"blocking_discussions_resolved": true, "work_in_progress": m.draft, "draft": m.draft,
		"first_contribution": false, "merge_status": "can_be_merged", "detailed_merge_status": "mergeable",
		"merge_when_pipeline_succeeds": false, "description": m.description, "url": m.webURL(base),
		"source": p.hookJSON(base), "target": p.hookJSON(base),
		"last_edited_at": isoTS(m.createdAt), "last_edited_by_id": m.author.id,
		"last_commit": p.pushCommit(base, head), "total_time_spent": 0, "time_change": 0,
		"time_estimate": 0, "human_total_time_spent": "", "human_time_change": "", "human_time_estimate": "",
		"labels": labelsHook(p, m.labels, m.createdAt), "system": false, "system_action": "",
		"merge_commit_sha": nil, "merged_at": isoTS(m.mergedAt), "closed_at": isoTS(m.closedAt),
	}
	if m.mergeCommitSHA != "" {
		out["merge_commit_sha"] = m.mergeCommitSHA
	}
	return out
}

func (w *world) mrHook(base string, m *mergeRequest, action string, old *mrSnap) obj {
	by := m.author
	switch action {
	case "merge":
		by = m.mergedBy
	case "close":
		by = m.closedBy
	case "approved":
		by = m.approvals[len(m.approvals)-1].user
	}
	attrs := m.hookAttrs(base)
	attrs["action"] = action
	changes := obj{}
	if old != nil {
		changes["updated_at"] = obj{"previous": hookTS(old.updatedAt), "current": hookTS(m.updatedAt)}
		if old.state != m.state {
			changes["state_id"] = obj{"previous": mrStateID(old.state), "current": mrStateID(m.state)}
		}
	}
	return obj{
		"object_kind": "merge_request", "event_type": "merge_request", "user": by.hookJSON(base),
		"project": m.p.hookJSON(base), "repository": m.p.repoHook(base), "object_attributes": attrs,
		"labels": labelsHook(m.p, m.labels, m.createdAt), "changes": changes,
		"assignees": usersHook(base, m.assignees), "reviewers": usersHook(base, m.reviewers),
	}
}

func (is *issue) hookAttrs(base string) obj {
	var assignee any
	if len(is.assignees) > 0 {
		assignee = is.assignees[0].id
	}
	stateID := 1
	if is.state == "closed" {
		stateID = 2
	}
	typ := "ISSUE"
	if is.incident {
		typ = "INCIDENT"
	}
	return obj{
		"id": is.id, "iid": is.iid, "title": is.title, "assignee_ids": userIDs(is.assignees),
		"assignee_id": assignee, "author_id": is.author.id, "project_id": is.p.id,
		"created_at": isoTS(is.createdAt), "updated_at": isoTS(is.updatedAt), "updated_by_id": is.author.id,
		"last_edited_at": nil, "last_edited_by_id": nil, "relative_position": is.iid * 513,
		"description": is.desc, "milestone_id": nil, "state_id": stateID, "confidential": false,
		"discussion_locked": false, "start_date": is.createdAt.UTC().Format("2006-01-02"), "due_date": nil,
		"moved_to_id": nil, "duplicated_to_id": nil, "time_estimate": 0, "total_time_spent": 0,
		"time_change": 0, "human_total_time_spent": nil, "human_time_estimate": nil, "human_time_change": nil,
		"weight": 0, "url": is.p.webURL(base) + fmt.Sprintf("/-/issues/%d", is.iid), "state": is.state,
		"severity": "unknown", "escalation_status": "triggered", "escalation_policy": obj{"id": 18, "name": "Engineering On-call"},
		"labels": labelsHook(is.p, is.labels, is.createdAt), "type": typ, "closed_at": isoTS(is.closedAt),
	}
}

func (w *world) issueHook(base string, is *issue, action string, old *issueSnap) obj {
	attrs := is.hookAttrs(base)
	attrs["action"] = action
	by := is.author
	if action == "close" && is.closedBy != nil {
		by = is.closedBy
	}
	changes := obj{}
	if old != nil {
		changes["updated_at"] = obj{"previous": hookTS(old.updatedAt), "current": hookTS(is.updatedAt)}
	}
	var assignee any
	if len(is.assignees) > 0 {
		assignee = is.assignees[0].hookJSON(base)
	} else {
		assignee = obj{}
	}
	return obj{
		"object_kind": "issue", "event_type": "issue", "user": by.hookJSON(base), "project": is.p.hookJSON(base),
		"object_attributes": attrs, "repository": is.p.repoHook(base), "assignees": usersHook(base, is.assignees),
		"assignee": assignee, "labels": labelsHook(is.p, is.labels, is.createdAt), "changes": changes,
	}
}

func (w *world) noteHook(base string, n *note) obj {
	p := n.p
	attrs := obj{
		"id": n.id, "note": n.body, "description": n.body, "type": nil, "author_id": n.author.id,
		"created_at": hookTS(n.createdAt), "updated_at": hookTS(n.updatedAt), "project_id": p.id,
		"attachment": nil, "change_position": nil, "original_position": nil, "position": nil,
		"discussion_id": p.sha(uint64(n.id), 0x4e)[:40], "internal": false, "line_code": nil,
		"commit_id": nil, "resolved_at": nil, "resolved_by_id": nil, "resolved_by_push": nil,
		"system": n.system, "st_diff": nil, "action": "create",
	}
	out := obj{
		"object_kind": "note", "event_type": "note", "user": n.author.hookJSON(base), "project_id": p.id,
		"project": p.hookJSON(base), "repository": p.repoHook(base), "object_attributes": attrs,
	}
	switch {
	case n.mr != nil:
		attrs["noteable_type"], attrs["noteable_id"] = "MergeRequest", n.mr.id
		attrs["url"] = n.mr.webURL(base) + fmt.Sprintf("#note_%d", n.id)
		mr := n.mr.hookAttrs(base)
		out["merge_request"] = mr
	case n.is != nil:
		attrs["noteable_type"], attrs["noteable_id"] = "Issue", n.is.id
		attrs["url"] = p.webURL(base) + fmt.Sprintf("/-/issues/%d#note_%d", n.is.iid, n.id)
		out["issue"] = n.is.hookAttrs(base)
	default:
		c := p.commit(p.mainRef(n.commit - 1))
		attrs["noteable_type"], attrs["noteable_id"] = "Commit", nil
		attrs["commit_id"] = c.sha
		attrs["line_code"] = c.sha[:40] + "_0_1"
		attrs["st_diff"] = obj{"diff": "", "new_path": "README.md", "old_path": "README.md", "a_mode": "100644", "b_mode": "100644", "new_file": false, "renamed_file": false, "deleted_file": false}
		attrs["url"] = p.webURL(base) + "/-/commit/" + c.sha + fmt.Sprintf("#note_%d", n.id)
		out["commit"] = p.pushCommit(base, c)
	}
	return out
}

// durationOrNil is a job's duration from a to b, a Ruby Float in GitLab's
// payloads; nil until both are known.
func durationOrNil(a, b time.Time) any {
	if a.IsZero() || b.IsZero() {
		return nil
	}
	return fraction(b.Sub(a).Seconds())
}

// queuedOrNil is a job's queued_duration, a Ruby Float; nil when unknown.
func (j job) queuedOrNil() any {
	if j.queued < 0 {
		return nil
	}
	return fraction(j.queued)
}

// pipelineDuration is a pipeline's duration, whole seconds as GitLab
// keeps it; nil until it finished.
func (pl *pipeline) pipelineDuration() any {
	if pl.finishedAt.IsZero() {
		return nil
	}
	return int64(pl.finishedAt.Sub(pl.startedAt) / time.Second)
}

func (pl *pipeline) runnerHook(j job) any {
	if j.startedAt.IsZero() {
		return nil
	}
	return obj{"id": 12 + j.id%3, "description": fmt.Sprintf("shared-runner-%d", 1+j.id%3), "runner_type": "instance_type", "active": true, "is_shared": true, "tags": []string{"docker"}}
}

func (pl *pipeline) envHook(j job) any {
	if j.stage != "deploy" {
		return nil
	}
	name, tier := "production", "production"
	switch pl.deployJobName() {
	case "deploy-staging":
		name, tier = "staging", "staging"
	case "deploy-review":
		name, tier = "review/"+pl.ref, "development"
	}
	return obj{"name": name, "action": "start", "deployment_tier": tier}
}

func (pl *pipeline) hookCommit(base string) obj {
	c := pl.p.commit(pl.head)
	return obj{
		"id": c.sha, "message": c.message, "title": c.title, "timestamp": gitTime(c.committedAt),
		"url": pl.p.webURL(base) + "/-/commit/" + c.sha, "author": obj{"name": c.author.name, "email": c.author.email()},
	}
}

func (w *world) pipelineHook(base string, pl *pipeline) obj {
	p := pl.p
	builds := []obj{}
	for _, j := range pl.jobs() {
		var reason any
		if j.failureReason != "" {
			reason = j.failureReason
		}
		builds = append(builds, obj{
			"id": j.id, "stage": j.stage, "name": j.name, "status": j.status,
			"created_at": hookTS(j.createdAt), "started_at": hookTS(j.startedAt), "finished_at": hookTS(j.finishedAt),
			"duration": durationOrNil(j.startedAt, j.finishedAt), "queued_duration": j.queuedOrNil(),
			"when": "on_success", "manual": false, "allow_failure": false, "failure_reason": reason,
			"user": pl.user.hookJSON(base), "runner": pl.runnerHook(j),
			"artifacts_file": obj{"filename": nil, "size": nil}, "environment": pl.envHook(j),
		})
	}
	var queued any
	if q := pl.queuedSeconds(); q != nil {
		queued = *q
	}
	var mr any
	if m := p.mrByBranch[strings.TrimPrefix(pl.ref, "refs/heads/")]; m != nil && pl.source == "merge_request_event" {
		mr = obj{"id": m.id, "iid": m.iid, "title": m.title, "source_branch": m.sourceBranch, "source_project_id": p.id,
			"target_branch": m.targetBranch, "target_project_id": p.id, "state": m.state, "merge_status": "can_be_merged",
			"detailed_merge_status": "mergeable", "url": m.webURL(base)}
	}
	return obj{
		"object_kind": "pipeline",
		"object_attributes": obj{
			"id": pl.id, "iid": pl.iid, "name": nil, "ref": pl.ref, "tag": false, "sha": pl.sha, "before_sha": pl.beforeSHA,
			"source": pl.source, "status": pl.status, "detailed_status": pl.status, "stages": stageNames,
			"created_at": hookTS(pl.createdAt), "finished_at": hookTS(pl.finishedAt), "duration": pl.pipelineDuration(),
			"queued_duration": queued, "variables": []obj{}, "url": pl.webURL(base),
		},
		"merge_request": mr, "user": pl.user.hookJSON(base), "project": p.hookJSON(base),
		"commit": pl.hookCommit(base), "source_pipeline": nil, "builds": builds,
	}
}

func (w *world) jobHook(base string, pl *pipeline, j job) obj {
	p := pl.p
	var reason any
	if j.failureReason != "" {
		reason = j.failureReason
	}
	c := p.commit(pl.head)
	return obj{
		"object_kind": "build", "ref": pl.ref, "tag": false, "before_sha": pl.beforeSHA, "sha": pl.sha,
		"retries_count": 0, "build_id": j.id, "build_name": j.name, "build_stage": j.stage, "build_status": j.status,
		"build_created_at": hookTS(j.createdAt), "build_started_at": hookTS(j.startedAt), "build_finished_at": hookTS(j.finishedAt),
		"build_created_at_iso": isoTS(j.createdAt), "build_started_at_iso": isoTS(j.startedAt), "build_finished_at_iso": isoTS(j.finishedAt),
		"build_duration": durationOrNil(j.startedAt, j.finishedAt), "build_queued_duration": j.queuedOrNil(),
		"build_allow_failure": false, "build_failure_reason": reason, "pipeline_id": pl.id,
		"runner": pl.runnerHook(j), "project_id": p.id, "project_name": p.group.fullName() + " / " + p.name,
		"user": pl.user.hookJSON(base),
		"commit": obj{
			"id": pl.id, "name": nil, "sha": pl.sha, "message": c.message, "author_name": c.author.name,
			"author_email": c.author.email(), "author_url": base + "/" + c.author.username, "status": pl.status,
			"duration": pl.pipelineDuration(), "started_at": hookTS(pl.startedAt), "finished_at": hookTS(pl.finishedAt),
		},
		"repository": p.repoHook(base), "project": p.hookJSON(base), "environment": pl.envHook(j), "source_pipeline": nil,
	}
}

func (w *world) deploymentHook(base string, d *deployment) obj {
	pl := d.pl
	p := pl.p
	c := p.commit(pl.head)
	jobs := pl.jobs()
	deployJob := jobs[len(jobs)-1]
	return obj{
		"object_kind": "deployment", "status": d.status, "status_changed_at": hookTS(d.updatedAt),
		"deployment_id": d.id, "deployable_id": deployJob.id,
		"deployable_url": p.webURL(base) + fmt.Sprintf("/-/jobs/%d", deployJob.id),
		"environment":    d.env.name, "environment_tier": d.env.tier, "environment_slug": d.env.slug(),
		"environment_external_url": "", "project": p.hookJSON(base), "short_sha": pl.sha[:8],
		"user": pl.user.hookJSON(base), "user_url": base + "/" + pl.user.username,
		"commit_url": p.webURL(base) + "/-/commit/" + pl.sha, "commit_title": c.title, "ref": pl.ref,
	}
}

func (w *world) releaseHook(base string, p *project, rl *release) obj {
	c := p.commit(p.mainRef(rl.tag.idx))
	arch := p.webURL(base) + "/-/archive/" + rl.tag.name + "/" + p.path + "-" + rl.tag.name
	sources := []obj{}
	for _, f := range []string{"zip", "tar.gz", "tar.bz2", "tar"} {
		sources = append(sources, obj{"format": f, "url": arch + "." + f})
	}
	return obj{
		"id": int64(rl.tag.idx) + p.id*1000, "created_at": hookTS(rl.createdAt), "description": rl.description(),
		"name": rl.tag.name, "released_at": hookTS(rl.releasedAt), "tag": rl.tag.name, "object_kind": "release",
		"project": p.hookJSON(base), "url": p.webURL(base) + "/-/releases/" + rl.tag.name, "action": "create",
		"assets": obj{"count": len(sources), "links": []obj{}, "sources": sources},
		"commit": p.pushCommit(base, c),
	}
}
