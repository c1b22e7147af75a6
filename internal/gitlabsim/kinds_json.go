package gitlabsim

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// JSON of the kinds beyond merge requests and pipelines, from GitLab's API
// docs: commits, branches, tags (docs.gitlab.com/api/commits, /branches,
// /tags), releases (/releases), issues (/issues), notes (/notes), events
// (/events), merge request approvals, diffs and commits
// (/merge_request_approvals, /merge_requests), deployments
// (/deployments), environments (/environments) and the container registry
// (/container_registry).

type commitStatsJSON struct {
	Additions int `json:"additions"`
	Deletions int `json:"deletions"`
	Total     int `json:"total"`
}

// commitListJSON is an item of GET /projects/:id/repository/commits.
type commitListJSON struct {
	jobCommitJSON
	Stats *commitStatsJSON `json:"stats,omitempty"` // with_stats=true only
}

func (p *project) commitListJSON(base string, c commitInfo, stats bool) commitListJSON {
	out := commitListJSON{jobCommitJSON: p.commitJSON(base, c)}
	if stats {
		out.Stats = &commitStatsJSON{c.additions, c.deletions, c.additions + c.deletions}
	}
	return out
}

type branchJSON struct {
	Name               string        `json:"name"`
	Merged             bool          `json:"merged"`
	Protected          bool          `json:"protected"`
	Default            bool          `json:"default"`
	DevelopersCanPush  bool          `json:"developers_can_push"`
	DevelopersCanMerge bool          `json:"developers_can_merge"`
	CanPush            bool          `json:"can_push"`
	WebURL             string        `json:"web_url"`
	Commit             jobCommitJSON `json:"commit"`
}

func (p *project) branchJSON(base string, b branch) branchJSON {
	def := b.mr == nil && !b.release
	protected := b.mr == nil
	return branchJSON{
		Name: b.name, Merged: b.merged, Protected: protected, Default: def,
		DevelopersCanPush: !protected, DevelopersCanMerge: !protected, CanPush: true,
		WebURL: fmt.Sprintf("%s/%s/-/tree/%s", base, p.fullPath(), b.name),
		Commit: p.commitJSON(base, p.commit(b.head)),
	}
}

type tagReleaseJSON struct {
	TagName     string `json:"tag_name"`
	Description string `json:"description"`
}

type tagJSON struct {
	Commit    jobCommitJSON   `json:"commit"`
	Release   *tagReleaseJSON `json:"release"`
	Name      string          `json:"name"`
	Target    string          `json:"target"`
	Message   *string         `json:"message"`
	Protected bool            `json:"protected"`
	CreatedAt gitTS           `json:"created_at"`
}

func (rl *release) description() string {
	return fmt.Sprintf("## %s\n\n- Bug fixes and improvements.", rl.tag.name)
}

func (p *project) tagJSON(base string, t *gitTag) tagJSON {
	c := p.commit(p.mainRef(t.idx))
	out := tagJSON{
		Commit: p.commitJSON(base, c), Name: t.name, Target: p.sha(uint64(t.idx)+1<<40, 3),
		Message: strp("Release " + t.name), CreatedAt: gitTS(t.createdAt),
	}
	for _, rl := range p.releases {
		if rl.tag == t {
			out.Release = &tagReleaseJSON{TagName: t.name, Description: rl.description()}
		}
	}
	return out
}

type assetSourceJSON struct {
	Format string `json:"format"`
	URL    string `json:"url"`
}

type releaseJSON struct {
	Name            string        `json:"name"`
	TagName         string        `json:"tag_name"`
	Description     string        `json:"description"`
	CreatedAt       ts            `json:"created_at"`
	ReleasedAt      ts            `json:"released_at"`
	UpcomingRelease bool          `json:"upcoming_release"`
	Author          userBasicJSON `json:"author"`
	Commit          jobCommitJSON `json:"commit"`
	CommitPath      string        `json:"commit_path"`
	TagPath         string        `json:"tag_path"`
	Assets          struct {
		Count   int               `json:"count"`
		Sources []assetSourceJSON `json:"sources"`
		Links   []releaseLinkJSON `json:"links"`
	} `json:"assets"`
	Evidences []evidenceJSON    `json:"evidences"`
	Links     map[string]string `json:"_links"`
}

// releaseLinkJSON is an asset link as the Releases API lists it.
type releaseLinkJSON struct {
	ID             int64  `json:"id"`
	Name           string `json:"name"`
	URL            string `json:"url"`
	DirectAssetURL string `json:"direct_asset_url"`
	LinkType       string `json:"link_type"`
}

type evidenceJSON struct {
	SHA         string `json:"sha"`
	Filepath    string `json:"filepath"`
	CollectedAt ts     `json:"collected_at"`
}

func (p *project) releaseJSON(base string, rl *release) releaseJSON {
	c := p.commit(p.mainRef(rl.tag.idx))
	web := base + "/" + p.fullPath()
	out := releaseJSON{
		Name: "Release " + rl.tag.name, TagName: rl.tag.name, Description: rl.description(),
		CreatedAt: ts(rl.createdAt), ReleasedAt: ts(rl.releasedAt),
		Author: rl.author.basic(base), Commit: p.commitJSON(base, c),
		CommitPath: "/" + p.fullPath() + "/-/commit/" + c.sha,
		TagPath:    "/" + p.fullPath() + "/-/tags/" + rl.tag.name,
		Evidences: []evidenceJSON{{
			SHA:         p.sha(uint64(rl.tag.idx)+1<<41, 5)[:40],
			Filepath:    fmt.Sprintf("%s/-/releases/%s/evidences/%d.json", web, rl.tag.name, rl.tag.idx+1),
			CollectedAt: ts(rl.createdAt),
		}},
		Links: map[string]string{
			"closed_issues_url":         web + "/-/issues?release_tag=" + rl.tag.name + "&scope=all&state=closed",
			"closed_merge_requests_url": web + "/-/merge_requests?release_tag=" + rl.tag.name + "&scope=all&state=closed",
			"edit_url":                  web + "/-/releases/" + rl.tag.name + "/edit",
			"merged_merge_requests_url": web + "/-/merge_requests?release_tag=" + rl.tag.name + "&scope=all&state=merged",
			"opened_issues_url":         web + "/-/issues?release_tag=" + rl.tag.name + "&scope=all&state=opened",
			"opened_merge_requests_url": web + "/-/merge_requests?release_tag=" + rl.tag.name + "&scope=all&state=opened",
			"self":                      web + "/-/releases/" + rl.tag.name,
		},
	}
	for _, f := range []string{"zip", "tar.gz", "tar.bz2", "tar"} {
		out.Assets.Sources = append(out.Assets.Sources, assetSourceJSON{f, fmt.Sprintf("%s/-/archive/%s/%s-%s.%s", web, rl.tag.name, p.path, rl.tag.name, f)})
	}
	// One packaged binary per release, as a release pipeline would attach.
	bin := fmt.Sprintf("%s-%s-linux-amd64.tar.gz", p.path, rl.tag.name)
	out.Assets.Links = []releaseLinkJSON{{
		ID: p.id*1000 + int64(rl.tag.idx) + 1, Name: bin,
		URL:            fmt.Sprintf("%s/-/package_files/%d/download", web, p.id*1000+int64(rl.tag.idx)+1),
		DirectAssetURL: fmt.Sprintf("%s/-/releases/%s/downloads/%s", web, rl.tag.name, bin),
		LinkType:       "package",
	}}
	out.Assets.Count = len(out.Assets.Sources) + len(out.Assets.Links)
	return out
}

type issueJSON struct {
	ID                   int64             `json:"id"`
	IID                  int64             `json:"iid"`
	ProjectID            int64             `json:"project_id"`
	Title                string            `json:"title"`
	Description          string            `json:"description"`
	State                string            `json:"state"`
	CreatedAt            ts                `json:"created_at"`
	UpdatedAt            ts                `json:"updated_at"`
	ClosedAt             ts                `json:"closed_at"`
	ClosedBy             *userBasicJSON    `json:"closed_by"`
	Labels               []string          `json:"labels"`
	Milestone            any               `json:"milestone"`
	Assignees            []userBasicJSON   `json:"assignees"`
	Author               userBasicJSON     `json:"author"`
	Type                 string            `json:"type"`
	Assignee             *userBasicJSON    `json:"assignee"`
	UserNotesCount       int               `json:"user_notes_count"`
	MergeRequestsCount   int               `json:"merge_requests_count"`
	Upvotes              int               `json:"upvotes"`
	Downvotes            int               `json:"downvotes"`
	DueDate              *string           `json:"due_date"`
	Confidential         bool              `json:"confidential"`
	DiscussionLocked     *bool             `json:"discussion_locked"`
	IssueType            string            `json:"issue_type"`
	WebURL               string            `json:"web_url"`
	TimeStats            timeStatsJSON     `json:"time_stats"`
	TaskCompletionStatus taskStatusJSON    `json:"task_completion_status"`
	Weight               *int              `json:"weight"`
	BlockingIssuesCount  int               `json:"blocking_issues_count"`
	HasTasks             bool              `json:"has_tasks"`
	TaskStatus           string            `json:"task_status"`
	Links                map[string]string `json:"_links"`
	References           referencesJSON    `json:"references"`
	Severity             string            `json:"severity"`
	MovedToID            *int64            `json:"moved_to_id"`
	Imported             bool              `json:"imported"`
	ImportedFrom         string            `json:"imported_from"`
	ServiceDeskReplyTo   *string           `json:"service_desk_reply_to"`
	Epic                 any               `json:"epic"`
	EpicIID              *int64            `json:"epic_iid"`
	Iteration            any               `json:"iteration"`
	HealthStatus         *string           `json:"health_status"`
}

func (is *issue) json(base string) issueJSON {
	p := is.p
	api := fmt.Sprintf("%s/api/v4/projects/%d", base, p.id)
	j := issueJSON{
		ID: is.id, IID: is.iid, ProjectID: p.id, Title: is.title, Description: is.desc, State: is.state,
		CreatedAt: ts(is.createdAt), UpdatedAt: ts(is.updatedAt), ClosedAt: ts(is.closedAt),
		ClosedBy: is.closedBy.basicPtr(base), Labels: is.labels, Assignees: []userBasicJSON{},
		Author: is.author.basic(base), Type: "ISSUE", IssueType: "issue",
		UserNotesCount: userNotes(is.notes), Upvotes: is.upvotes,
		WebURL: fmt.Sprintf("%s/%s/-/issues/%d", base, p.fullPath(), is.iid),
		Links: map[string]string{
			"self": fmt.Sprintf("%s/issues/%d", api, is.iid), "notes": fmt.Sprintf("%s/issues/%d/notes", api, is.iid),
			"award_emoji": fmt.Sprintf("%s/issues/%d/award_emoji", api, is.iid), "project": api,
		},
		References: referencesJSON{
			Short: fmt.Sprintf("#%d", is.iid), Relative: fmt.Sprintf("#%d", is.iid),
			Full: fmt.Sprintf("%s#%d", p.fullPath(), is.iid),
		},
		Severity: "UNKNOWN", ImportedFrom: "none",
	}
	if is.incident {
		j.Type, j.IssueType = "INCIDENT", "incident"
	}
	for _, u := range is.assignees {
		j.Assignees = append(j.Assignees, u.basic(base))
	}
	if len(is.assignees) > 0 {
		j.Assignee = is.assignees[0].basicPtr(base)
	}
	return j
}

type noteJSON struct {
	ID           int64         `json:"id"`
	Type         *string       `json:"type"`
	Body         string        `json:"body"`
	Attachment   *string       `json:"attachment"`
	Author       userBasicJSON `json:"author"`
	CreatedAt    ts            `json:"created_at"`
	UpdatedAt    ts            `json:"updated_at"`
	System       bool          `json:"system"`
	NoteableID   *int64        `json:"noteable_id"`
	NoteableType string        `json:"noteable_type"`
	ProjectID    int64         `json:"project_id"`
	Resolvable   bool          `json:"resolvable"`
	Confidential bool          `json:"confidential"`
	Internal     bool          `json:"internal"`
	NoteableIID  *int64        `json:"noteable_iid"`
	Imported     bool          `json:"imported"`
	ImportedFrom string        `json:"imported_from"`
}

func (n *note) json(base string) noteJSON {
	j := noteJSON{
		ID: n.id, Body: n.body, Author: n.author.basic(base), CreatedAt: ts(n.createdAt), UpdatedAt: ts(n.updatedAt),
		System: n.system, ProjectID: n.p.id, ImportedFrom: "none",
	}
	switch {
	case n.mr != nil:
		j.NoteableType, j.NoteableID, j.NoteableIID = "MergeRequest", &n.mr.id, &n.mr.iid
	case n.is != nil:
		j.NoteableType, j.NoteableID, j.NoteableIID = "Issue", &n.is.id, &n.is.iid
	default:
		// Commit notes point at their commit by sha, not by noteable_id.
		j.NoteableType = "Commit"
	}
	return j
}

type pushDataJSON struct {
	CommitCount int    `json:"commit_count"`
	Action      string `json:"action"`
	RefType     string `json:"ref_type"`
	CommitFrom  string `json:"commit_from"`
	CommitTo    string `json:"commit_to"`
	Ref         string `json:"ref"`
	CommitTitle string `json:"commit_title"`
	RefCount    *int   `json:"ref_count"`
}

type eventJSON struct {
	ID             int64         `json:"id"`
	Title          *string       `json:"title"`
	ProjectID      int64         `json:"project_id"`
	ActionName     string        `json:"action_name"`
	TargetID       *int64        `json:"target_id"`
	TargetIID      *int64        `json:"target_iid"`
	TargetType     *string       `json:"target_type"`
	AuthorID       int64         `json:"author_id"`
	TargetTitle    *string       `json:"target_title"`
	CreatedAt      ts            `json:"created_at"`
	Author         userBasicJSON `json:"author"`
	Imported       bool          `json:"imported"`
	ImportedFrom   string        `json:"imported_from"`
	PushData       *pushDataJSON `json:"push_data,omitempty"` // push events only
	Note           *noteJSON     `json:"note,omitempty"`      // note events only
	AuthorUsername string        `json:"author_username"`
}

func (e *event) json(base string) eventJSON {
	p := e.p
	j := eventJSON{
		ID: e.id, ProjectID: p.id, ActionName: e.action, AuthorID: e.author.id, CreatedAt: ts(e.at),
		Author: e.author.basic(base), ImportedFrom: "none", AuthorUsername: e.author.username,
	}
	switch {
	case e.n != nil:
		n := e.n.json(base)
		j.Note = &n
		j.TargetID, j.TargetIID, j.TargetType = &e.n.id, &e.n.id, strp("Note")
		switch {
		case e.n.mr != nil:
			j.TargetTitle = strp(e.n.mr.title)
		case e.n.is != nil:
			j.TargetTitle = strp(e.n.is.title)
		default:
			j.TargetTitle = strp(p.commit(p.mainRef(e.n.commit - 1)).title)
		}
	case e.action == "pushed to":
		m := e.mr
		c := p.commit(commitRef{m: m, k: mergeK})
		j.PushData = &pushDataJSON{
			CommitCount: m.nCommits + 1, Action: "pushed", RefType: "branch",
			CommitFrom: p.shaOf(p.mainRef(m.mainIdx - 1)), CommitTo: c.sha, Ref: m.targetBranch, CommitTitle: c.title,
		}
	case e.mr != nil:
		j.TargetID, j.TargetIID, j.TargetType, j.TargetTitle = &e.mr.id, &e.mr.iid, strp("MergeRequest"), strp(e.mr.title)
	case e.is != nil:
		j.TargetID, j.TargetIID, j.TargetType, j.TargetTitle = &e.is.id, &e.is.iid, strp("Issue"), strp(e.is.title)
	}
	return j
}

// eventActions maps the action filter to the action names it selects.
var eventActions = map[string][]string{
	"created": {"opened", "created"}, "updated": {"updated"}, "closed": {"closed"}, "reopened": {"reopened"},
	"pushed": {"pushed to", "pushed new"}, "commented": {"commented on"}, "merged": {"accepted"},
	"joined": {"joined"}, "left": {"left"}, "destroyed": {"destroyed"}, "expired": {"expired"}, "approved": {"approved"},
}

var eventTargets = []string{"issue", "milestone", "merge_request", "note", "project", "snippet", "user", "wiki", "design"}

func (e *event) targetType() string {
	switch {
	case e.n != nil:
		return "note"
	case e.action == "pushed to":
		return ""
	case e.mr != nil:
		return "merge_request"
	case e.is != nil:
		return "issue"
	}
	return ""
}

type approvedByJSON struct {
	User       userBasicJSON `json:"user"`
	ApprovedAt ts            `json:"approved_at"`
}

type approvalsJSON struct {
	ID                             int64            `json:"id"`
	IID                            int64            `json:"iid"`
	ProjectID                      int64            `json:"project_id"`
	Title                          string           `json:"title"`
	Description                    string           `json:"description"`
	State                          string           `json:"state"`
	CreatedAt                      ts               `json:"created_at"`
	UpdatedAt                      ts               `json:"updated_at"`
	MergeStatus                    string           `json:"merge_status"`
	Approved                       bool             `json:"approved"`
	ApprovalsRequired              int              `json:"approvals_required"`
	ApprovalsLeft                  int              `json:"approvals_left"`
	RequirePasswordToApprove       bool             `json:"require_password_to_approve"`
	ApprovedBy                     []approvedByJSON `json:"approved_by"`
	SuggestedApprovers             []any            `json:"suggested_approvers"`
	Approvers                      []any            `json:"approvers"`
	ApproverGroups                 []any            `json:"approver_groups"`
	UserHasApproved                bool             `json:"user_has_approved"`
	UserCanApprove                 bool             `json:"user_can_approve"`
	ApprovalRulesLeft              []any            `json:"approval_rules_left"`
	HasApprovalRules               bool             `json:"has_approval_rules"`
	MergeRequestApproversAvailable bool             `json:"merge_request_approvers_available"`
	MultipleApprovalRulesAvailable bool             `json:"multiple_approval_rules_available"`
	InvalidApproversRules          []any            `json:"invalid_approvers_rules"`
}

// approvalsRequired is the project's rule: one approval.
const approvalsRequired = 1

func (m *mergeRequest) approvalsJSON(base string, me *user) approvalsJSON {
	j := approvalsJSON{
		ID: m.id, IID: m.iid, ProjectID: m.p.id, Title: m.title, Description: m.description, State: m.state,
		CreatedAt: ts(m.createdAt), UpdatedAt: ts(m.updatedAt), MergeStatus: "can_be_merged",
		Approved: len(m.approvals) >= approvalsRequired, ApprovalsRequired: approvalsRequired,
		ApprovalsLeft: max(approvalsRequired-len(m.approvals), 0), ApprovedBy: []approvedByJSON{},
		SuggestedApprovers: []any{}, Approvers: []any{}, ApproverGroups: []any{}, ApprovalRulesLeft: []any{},
		InvalidApproversRules: []any{}, MergeRequestApproversAvailable: true, MultipleApprovalRulesAvailable: true,
		UserCanApprove: m.state == "opened" && m.author != me,
	}
	for _, a := range m.approvals {
		j.ApprovedBy = append(j.ApprovedBy, approvedByJSON{a.user.basic(base), ts(a.at)})
		if a.user == me {
			j.UserHasApproved, j.UserCanApprove = true, false
		}
	}
	return j
}

type diffJSON struct {
	OldPath       string `json:"old_path"`
	NewPath       string `json:"new_path"`
	AMode         string `json:"a_mode"`
	BMode         string `json:"b_mode"`
	Diff          string `json:"diff"`
	NewFile       bool   `json:"new_file"`
	RenamedFile   bool   `json:"renamed_file"`
	DeletedFile   bool   `json:"deleted_file"`
	GeneratedFile bool   `json:"generated_file"`
	Collapsed     bool   `json:"collapsed"`
	TooLarge      bool   `json:"too_large"`
}

func (f diffFile) json() diffJSON {
	j := diffJSON{OldPath: f.path, NewPath: f.path, AMode: "100644", BMode: "100644", Diff: f.unified(), NewFile: f.newFile}
	if f.newFile {
		j.AMode = "0"
	}
	return j
}

func (m *mergeRequest) diffRefs() diffRefsJSON {
	p := m.p
	var base string
	if m.state == "merged" {
		base = p.shaOf(p.mainRef(m.mainIdx - 1))
	} else {
		fork := p.headAt(m.headAt.Add(-time.Duration(m.nCommits) * m.commitGap))
		if m.targetBranch == p.relBranch {
			// The merge base with the release branch, whose head is main's
			// commit at relIdx; that head is where the diff starts.
			return diffRefsJSON{BaseSHA: p.shaOf(p.mainRef(min(fork, p.relIdx))), HeadSHA: p.shaOf(m.head()), StartSHA: p.shaOf(p.mainRef(p.relIdx))}
		}
		base = p.shaOf(p.mainRef(fork))
	}
	return diffRefsJSON{BaseSHA: base, HeadSHA: p.shaOf(m.head()), StartSHA: base}
}

type environmentBasicJSON struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Slug        string  `json:"slug"`
	ExternalURL *string `json:"external_url"`
	CreatedAt   ts      `json:"created_at"`
	UpdatedAt   ts      `json:"updated_at"`
}

type environmentJSON struct {
	environmentBasicJSON
	Description         *string `json:"description"`
	State               string  `json:"state"`
	Tier                string  `json:"tier"`
	AutoStopAt          ts      `json:"auto_stop_at"`
	AutoStopSetting     string  `json:"auto_stop_setting"`
	KubernetesNamespace *string `json:"kubernetes_namespace"`
	FluxResourcePath    *string `json:"flux_resource_path"`
}

func (e *environment) basicJSON(base string, p *project) environmentBasicJSON {
	var u string
	switch e.tier {
	case "production":
		u = "https://" + p.path + ".example.com"
	case "staging":
		u = "https://staging." + p.path + ".example.com"
	default:
		u = "https://" + e.slug() + "." + p.path + ".review.example.com"
	}
	ext := &u
	if e.written {
		// As the environments API last set it; null when it never was.
		ext = nil
		if e.externalURL != "" {
			ext = &e.externalURL
		}
	}
	return environmentBasicJSON{ID: e.id, Name: e.name, Slug: e.slug(), ExternalURL: ext, CreatedAt: ts(e.createdAt), UpdatedAt: ts(e.updatedAt)}
}

func (e *environment) json(base string, p *project) environmentJSON {
	return environmentJSON{environmentBasicJSON: e.basicJSON(base, p), State: e.state, Tier: e.tier, AutoStopAt: ts(e.autoStopAt), AutoStopSetting: "always"}
}

// environmentSingleJSON is GET /projects/:id/environments/:environment_id:
// the listing's entity with its last deployment, which leaves out the
// environment it belongs to, and the docs' cluster_agent (no environment
// here has an agent).
type environmentSingleJSON struct {
	environmentJSON
	LastDeployment *deploymentJSON `json:"last_deployment"`
	ClusterAgent   any             `json:"cluster_agent"`
}

func (e *environment) singleJSON(base string, p *project) environmentSingleJSON {
	j := environmentSingleJSON{environmentJSON: e.json(base, p)}
	if d := p.lastDeployment(e); d != nil {
		dj := d.json(base)
		dj.Environment = nil
		j.LastDeployment = &dj
	}
	return j
}

type deploymentJSON struct {
	ID          int64                 `json:"id"`
	IID         int64                 `json:"iid"`
	Ref         string                `json:"ref"`
	SHA         string                `json:"sha"`
	CreatedAt   ts                    `json:"created_at"`
	UpdatedAt   ts                    `json:"updated_at"`
	Status      string                `json:"status"`
	User        userBasicJSON         `json:"user"`
	Environment *environmentBasicJSON `json:"environment,omitempty"` // left out under an environment
	Deployable  jobJSON               `json:"deployable"`
}

func (d *deployment) json(base string) deploymentJSON {
	pl := d.pl
	jobs := pl.jobs()
	env := d.env.basicJSON(base, pl.p)
	return deploymentJSON{
		ID: d.id, IID: d.iid, Ref: pl.ref, SHA: pl.sha, CreatedAt: ts(d.createdAt), UpdatedAt: ts(d.updatedAt),
		Status: d.status, User: pl.user.basic(base), Environment: &env,
		Deployable: pl.jobJSON(base, jobs[len(jobs)-1], pl.commitJSON(base)),
	}
}

type registryTagJSON struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Location string `json:"location"`
}

type registryTagDetailsJSON struct {
	registryTagJSON
	Revision      string `json:"revision"`
	ShortRevision string `json:"short_revision"`
	Digest        string `json:"digest"`
	CreatedAt     ts     `json:"created_at"`
	TotalSize     int64  `json:"total_size"`
}

type registryRepoJSON struct {
	ID                     int64             `json:"id"`
	Name                   string            `json:"name"`
	Path                   string            `json:"path"`
	ProjectID              int64             `json:"project_id"`
	Location               string            `json:"location"`
	CreatedAt              ts                `json:"created_at"`
	CleanupPolicyStartedAt ts                `json:"cleanup_policy_started_at"`
	Status                 *string           `json:"status"`
	TagsCount              *int              `json:"tags_count,omitempty"` // tags_count=true only
	Tags                   []registryTagJSON `json:"tags,omitempty"`       // tags=true only
}

func (t *imageTag) json(base string) registryTagJSON {
	return registryTagJSON{Name: t.name, Path: t.rp.path() + ":" + t.name, Location: t.rp.location(base) + ":" + t.name}
}

func (t *imageTag) detailsJSON(base string) registryTagDetailsJSON {
	rev := t.revision()
	return registryTagDetailsJSON{
		registryTagJSON: t.json(base), Revision: rev, ShortRevision: rev[:9], Digest: t.digest(),
		CreatedAt: ts(t.createdAt), TotalSize: t.size(),
	}
}

// linkTo is the request's URL with q as its query, for Link headers.
func (c *call) linkTo(q url.Values, rel string) string {
	return "<" + c.base + c.r.URL.EscapedPath() + "?" + q.Encode() + `>; rel="` + rel + `"`
}

func (c *call) queryWith(kv ...string) url.Values {
	q := url.Values{}
	for k, v := range c.q {
		q[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
