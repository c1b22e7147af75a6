package gitlabsim

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// GitLab's JSON, written from the simulator's own types. Field names, types
// and nulls follow GitLab's REST API docs (docs.gitlab.com/api/...) and the
// sample payloads in testdata/.

// ts is a GitLab timestamp: ISO 8601 UTC with milliseconds, null when zero.
type ts time.Time

func (t ts) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

// gitTS is a date from a git object (a commit's authored, committed and
// created dates, an annotated tag's date): GitLab writes these with the
// committer's UTC offset rather than Z, e.g. 2024-03-01T10:11:12.000+00:00.
type gitTS time.Time

func (t gitTS) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format("2006-01-02T15:04:05.000-07:00") + `"`), nil
}

// fraction is a number GitLab computes as a Ruby Float (a job's duration,
// queued_duration and coverage): Ruby writes one with a decimal point even
// when it is whole (17.0), where Go would write 17, and clients tell
// integer fields from fractional ones by it.
type fraction float64

func (f fraction) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat(nil, float64(f), 'f', -1, 64)
	if !bytes.ContainsAny(b, ".") {
		b = append(b, ".0"...)
	}
	return b, nil
}

func fractionPtr(f float64) *fraction {
	v := fraction(f)
	return &v
}

func userNotes(ns []*note) int {
	n := 0
	for _, x := range ns {
		if !x.system {
			n++
		}
	}
	return n
}

type userBasicJSON struct {
	ID        int64   `json:"id"`
	Username  string  `json:"username"`
	Name      string  `json:"name"`
	State     string  `json:"state"`
	Locked    bool    `json:"locked"`
	AvatarURL *string `json:"avatar_url"`
	WebURL    string  `json:"web_url"`
}

// userJSON is the user entity the jobs API embeds and /user extends.
type userJSON struct {
	userBasicJSON
	CreatedAt    ts      `json:"created_at"`
	Bio          string  `json:"bio"`
	Location     string  `json:"location"`
	PublicEmail  *string `json:"public_email"`
	Skype        string  `json:"skype"`
	Linkedin     string  `json:"linkedin"`
	Twitter      string  `json:"twitter"`
	Discord      string  `json:"discord"`
	WebsiteURL   string  `json:"website_url"`
	Organization string  `json:"organization"`
	JobTitle     string  `json:"job_title"`
	Pronouns     *string `json:"pronouns"`
	Bot          bool    `json:"bot"`
	WorkInfo     *string `json:"work_information"`
	Followers    int     `json:"followers"`
	Following    int     `json:"following"`
	LocalTime    *string `json:"local_time"`
}

// currentUserJSON is GET /user: the user plus what only its owner sees.
type currentUserJSON struct {
	userJSON
	LastSignInAt     ts     `json:"last_sign_in_at"`
	ConfirmedAt      ts     `json:"confirmed_at"`
	LastActivityOn   string `json:"last_activity_on"`
	Email            string `json:"email"`
	ThemeID          int    `json:"theme_id"`
	ColorSchemeID    int    `json:"color_scheme_id"`
	ProjectsLimit    int    `json:"projects_limit"`
	CurrentSignInAt  ts     `json:"current_sign_in_at"`
	Identities       []any  `json:"identities"`
	CanCreateGroup   bool   `json:"can_create_group"`
	CanCreateProject bool   `json:"can_create_project"`
	TwoFactor        bool   `json:"two_factor_enabled"`
	External         bool   `json:"external"`
	PrivateProfile   bool   `json:"private_profile"`
	CommitEmail      string `json:"commit_email"`
}

func (u *user) basic(base string) userBasicJSON {
	return userBasicJSON{
		ID: u.id, Username: u.username, Name: u.name, State: "active",
		AvatarURL: strp(fmt.Sprintf("https://www.gravatar.com/avatar/%x?s=80&d=identicon", u.id*2654435761)),
		WebURL:    base + "/" + u.username,
	}
}

func (u *user) basicPtr(base string) *userBasicJSON {
	if u == nil {
		return nil
	}
	b := u.basic(base)
	return &b
}

func (u *user) full(base string) userJSON {
	return userJSON{
		userBasicJSON: u.basic(base),
		CreatedAt:     ts(u.createdAt),
		PublicEmail:   strp(""),
		JobTitle:      "Software Engineer",
	}
}

func (u *user) current(base string, now time.Time) currentUserJSON {
	return currentUserJSON{
		userJSON:         u.full(base),
		LastSignInAt:     ts(ms(now.Add(-26 * time.Hour))),
		ConfirmedAt:      ts(u.createdAt),
		LastActivityOn:   now.UTC().Format(time.DateOnly),
		Email:            u.username + "@example.com",
		ThemeID:          1,
		ColorSchemeID:    1,
		ProjectsLimit:    100000,
		CurrentSignInAt:  ts(ms(now.Add(-2 * time.Hour))),
		Identities:       []any{},
		CanCreateGroup:   true,
		CanCreateProject: true,
		CommitEmail:      u.username + "@example.com",
	}
}

func strp(s string) *string { return &s }

type timeStatsJSON struct {
	TimeEstimate        int     `json:"time_estimate"`
	TotalTimeSpent      int     `json:"total_time_spent"`
	HumanTimeEstimate   *string `json:"human_time_estimate"`
	HumanTotalTimeSpent *string `json:"human_total_time_spent"`
}

type referencesJSON struct {
	Short    string `json:"short"`
	Relative string `json:"relative"`
	Full     string `json:"full"`
}

type taskStatusJSON struct {
	Count          int `json:"count"`
	CompletedCount int `json:"completed_count"`
}

// mrJSON is an item of GET /projects/:id/merge_requests.
type mrJSON struct {
	ID                          int64           `json:"id"`
	IID                         int64           `json:"iid"`
	ProjectID                   int64           `json:"project_id"`
	Title                       string          `json:"title"`
	Description                 string          `json:"description"`
	State                       string          `json:"state"`
	CreatedAt                   ts              `json:"created_at"`
	UpdatedAt                   ts              `json:"updated_at"`
	MergedBy                    *userBasicJSON  `json:"merged_by"`
	MergeUser                   *userBasicJSON  `json:"merge_user"`
	MergedAt                    ts              `json:"merged_at"`
	MergeAfter                  ts              `json:"merge_after"`
	PreparedAt                  ts              `json:"prepared_at"`
	ClosedBy                    *userBasicJSON  `json:"closed_by"`
	ClosedAt                    ts              `json:"closed_at"`
	TargetBranch                string          `json:"target_branch"`
	SourceBranch                string          `json:"source_branch"`
	UserNotesCount              int             `json:"user_notes_count"`
	Upvotes                     int             `json:"upvotes"`
	Downvotes                   int             `json:"downvotes"`
	Author                      userBasicJSON   `json:"author"`
	Assignees                   []userBasicJSON `json:"assignees"`
	Assignee                    *userBasicJSON  `json:"assignee"`
	Reviewers                   []userBasicJSON `json:"reviewers"`
	SourceProjectID             int64           `json:"source_project_id"`
	TargetProjectID             int64           `json:"target_project_id"`
	Labels                      []string        `json:"labels"`
	Draft                       bool            `json:"draft"`
	Imported                    bool            `json:"imported"`
	ImportedFrom                string          `json:"imported_from"`
	WorkInProgress              bool            `json:"work_in_progress"`
	Milestone                   any             `json:"milestone"`
	MergeWhenPipelineSucceeds   bool            `json:"merge_when_pipeline_succeeds"`
	MergeStatus                 string          `json:"merge_status"`
	DetailedMergeStatus         string          `json:"detailed_merge_status"`
	SHA                         string          `json:"sha"`
	MergeCommitSHA              *string         `json:"merge_commit_sha"`
	SquashCommitSHA             *string         `json:"squash_commit_sha"`
	DiscussionLocked            *bool           `json:"discussion_locked"`
	ShouldRemoveSourceBranch    *bool           `json:"should_remove_source_branch"`
	ForceRemoveSourceBranch     bool            `json:"force_remove_source_branch"`
	AllowCollaboration          bool            `json:"allow_collaboration"`
	AllowMaintainerToPush       bool            `json:"allow_maintainer_to_push"`
	Reference                   string          `json:"reference"`
	References                  referencesJSON  `json:"references"`
	WebURL                      string          `json:"web_url"`
	TimeStats                   timeStatsJSON   `json:"time_stats"`
	Squash                      bool            `json:"squash"`
	SquashOnMerge               bool            `json:"squash_on_merge"`
	TaskCompletionStatus        taskStatusJSON  `json:"task_completion_status"`
	HasConflicts                bool            `json:"has_conflicts"`
	BlockingDiscussionsResolved bool            `json:"blocking_discussions_resolved"`
	ApprovalsBeforeMerge        *int            `json:"approvals_before_merge"`
}

type diffRefsJSON struct {
	BaseSHA  string `json:"base_sha"`
	HeadSHA  string `json:"head_sha"`
	StartSHA string `json:"start_sha"`
}

// mrSingleJSON is GET /projects/:id/merge_requests/:iid.
type mrSingleJSON struct {
	mrJSON
	Subscribed                  bool                `json:"subscribed"`
	ChangesCount                string              `json:"changes_count"`
	LatestBuildStartedAt        ts                  `json:"latest_build_started_at"`
	LatestBuildFinishedAt       ts                  `json:"latest_build_finished_at"`
	FirstDeployedToProductionAt ts                  `json:"first_deployed_to_production_at"`
	Pipeline                    *pipelineBasicJSON  `json:"pipeline"`
	HeadPipeline                *pipelineSingleJSON `json:"head_pipeline"`
	DiffRefs                    diffRefsJSON        `json:"diff_refs"`
	MergeError                  *string             `json:"merge_error"`
	RebaseInProgress            bool                `json:"rebase_in_progress"`
	DivergedCommitsCount        int                 `json:"diverged_commits_count"`
	FirstContribution           bool                `json:"first_contribution"`
	User                        struct {
		CanMerge bool `json:"can_merge"`
	} `json:"user"`
}

// mrChangesJSON is GET /projects/:id/merge_requests/:iid/changes
// (Entities::MergeRequestChanges): the single merge request, its diff's
// files as the diffs listing shows them, and whether any was left out.
type mrChangesJSON struct {
	mrSingleJSON
	Changes  []diffJSON `json:"changes"`
	Overflow bool       `json:"overflow"`
}

func (m *mergeRequest) webURL(base string) string {
	return fmt.Sprintf("%s/%s/-/merge_requests/%d", base, m.p.fullPath(), m.iid)
}

func (m *mergeRequest) listJSON(base string) mrJSON {
	p := m.p
	j := mrJSON{
		ID: m.id, IID: m.iid, ProjectID: p.id, Title: m.title, Description: m.description,
		State: m.state, CreatedAt: ts(m.createdAt), UpdatedAt: ts(m.updatedAt),
		MergedBy: m.mergedBy.basicPtr(base), MergeUser: m.mergedBy.basicPtr(base), MergedAt: ts(m.mergedAt),
		PreparedAt: ts(m.createdAt),
		ClosedBy:   m.closedBy.basicPtr(base), ClosedAt: ts(m.closedAt),
		TargetBranch: m.targetBranch, SourceBranch: m.sourceBranch,
		UserNotesCount: userNotes(m.notes), Upvotes: m.upvotes,
		Author:          m.author.basic(base),
		Assignees:       make([]userBasicJSON, 0, len(m.assignees)),
		Reviewers:       make([]userBasicJSON, 0, len(m.reviewers)),
		SourceProjectID: p.id, TargetProjectID: p.id,
		Labels: m.labels, Draft: m.draft, ImportedFrom: "none", WorkInProgress: m.draft,
		MergeStatus: "can_be_merged", DetailedMergeStatus: "mergeable",
		SHA: m.p.shaOf(m.head()),
		// Source branches stay after a merge: objects are never deleted.
		ForceRemoveSourceBranch: false,
		Reference:               fmt.Sprintf("!%d", m.iid),
		References: referencesJSON{
			Short: fmt.Sprintf("!%d", m.iid), Relative: fmt.Sprintf("!%d", m.iid),
			Full: fmt.Sprintf("%s!%d", p.fullPath(), m.iid),
		},
		WebURL:                      m.webURL(base),
		TaskCompletionStatus:        taskStatusJSON{},
		BlockingDiscussionsResolved: true,
		ApprovalsBeforeMerge:        nil,
	}
	for _, u := range m.assignees {
		j.Assignees = append(j.Assignees, u.basic(base))
	}
	if len(m.assignees) > 0 {
		j.Assignee = m.assignees[0].basicPtr(base)
	}
	for _, u := range m.reviewers {
		j.Reviewers = append(j.Reviewers, u.basic(base))
	}
	switch {
	case m.state != "opened":
		j.DetailedMergeStatus = "not_open"
	case m.draft:
		j.DetailedMergeStatus = "draft_status"
	}
	if m.mergeCommitSHA != "" {
		j.MergeCommitSHA = strp(m.mergeCommitSHA)
	}
	return j
}

func (m *mergeRequest) singleJSON(base string) mrSingleJSON {
	j := mrSingleJSON{
		mrJSON:       m.listJSON(base),
		ChangesCount: strconv.Itoa(len(m.diffFiles())),
		DiffRefs:     m.diffRefs(),
	}
	j.User.CanMerge = m.state == "opened"
	return j
}

// pipelineBasicJSON is an item of GET /projects/:id/pipelines.
type pipelineBasicJSON struct {
	ID        int64   `json:"id"`
	IID       int64   `json:"iid"`
	ProjectID int64   `json:"project_id"`
	SHA       string  `json:"sha"`
	Ref       string  `json:"ref"`
	Status    string  `json:"status"`
	Source    string  `json:"source"`
	CreatedAt ts      `json:"created_at"`
	UpdatedAt ts      `json:"updated_at"`
	WebURL    string  `json:"web_url"`
	Name      *string `json:"name"`
}

type detailedStatusJSON struct {
	Icon         string `json:"icon"`
	Text         string `json:"text"`
	Label        string `json:"label"`
	Group        string `json:"group"`
	Tooltip      string `json:"tooltip"`
	HasDetails   bool   `json:"has_details"`
	DetailsPath  string `json:"details_path"`
	Illustration any    `json:"illustration"`
	Favicon      string `json:"favicon"`
}

// pipelineSingleJSON is GET /projects/:id/pipelines/:pipeline_id.
type pipelineSingleJSON struct {
	pipelineBasicJSON
	BeforeSHA      string             `json:"before_sha"`
	Tag            bool               `json:"tag"`
	YAMLErrors     *string            `json:"yaml_errors"`
	User           userBasicJSON      `json:"user"`
	StartedAt      ts                 `json:"started_at"`
	FinishedAt     ts                 `json:"finished_at"`
	CommittedAt    ts                 `json:"committed_at"`
	Duration       *int64             `json:"duration"`
	QueuedDuration *int64             `json:"queued_duration"`
	Coverage       *string            `json:"coverage"`
	DetailedStatus detailedStatusJSON `json:"detailed_status"`
}

// queuedSeconds is GitLab's Ci::Pipeline#queued_duration: whole seconds
// from creation to start, truncated, and nil before the start or when
// they round down to zero.
func (pl *pipeline) queuedSeconds() *int64 {
	if pl.startedAt.IsZero() {
		return nil
	}
	s := int64(pl.startedAt.Sub(pl.createdAt) / time.Second)
	if s == 0 {
		return nil
	}
	return &s
}

func (pl *pipeline) webURL(base string) string {
	return fmt.Sprintf("%s/%s/-/pipelines/%d", base, pl.p.fullPath(), pl.id)
}

func (pl *pipeline) basicJSON(base string) pipelineBasicJSON {
	return pipelineBasicJSON{
		ID: pl.id, IID: pl.iid, ProjectID: pl.p.id, SHA: pl.sha, Ref: pl.ref,
		Status: pl.status, Source: pl.source, CreatedAt: ts(pl.createdAt), UpdatedAt: ts(pl.updatedAt),
		WebURL: pl.webURL(base),
	}
}

var statusText = map[string][3]string{ // text, label, icon
	"success":  {"passed", "passed", "status_success"},
	"failed":   {"failed", "failed", "status_failed"},
	"canceled": {"canceled", "canceled", "status_canceled"},
	"running":  {"running", "running", "status_running"},
	"pending":  {"pending", "pending", "status_pending"},
	"created":  {"created", "created", "status_created"},
	"skipped":  {"skipped", "skipped", "status_skipped"},
}

func (pl *pipeline) singleJSON(base string) pipelineSingleJSON {
	st := statusText[pl.status]
	j := pipelineSingleJSON{
		pipelineBasicJSON: pl.basicJSON(base),
		BeforeSHA:         pl.beforeSHA,
		User:              pl.user.basic(base),
		StartedAt:         ts(pl.startedAt),
		FinishedAt:        ts(pl.finishedAt),
		DetailedStatus: detailedStatusJSON{
			Icon: st[2], Text: st[0], Label: st[1], Group: pl.status, Tooltip: st[1],
			HasDetails: true, DetailsPath: fmt.Sprintf("/%s/-/pipelines/%d", pl.p.fullPath(), pl.id),
			Favicon: "/assets/ci_favicons/favicon_" + st[2] + ".png",
		},
	}
	j.QueuedDuration = pl.queuedSeconds()
	if !pl.finishedAt.IsZero() {
		d := int64(pl.finishedAt.Sub(pl.startedAt) / time.Second)
		j.Duration = &d
	}
	return j
}

// jobCommitJSON is the commit entity (docs.gitlab.com/api/commits), as
// embedded in jobs, branches, tags and releases.
type jobCommitJSON struct {
	ID               string            `json:"id"`
	ShortID          string            `json:"short_id"`
	CreatedAt        gitTS             `json:"created_at"`
	ParentIDs        []string          `json:"parent_ids"`
	Title            string            `json:"title"`
	Message          string            `json:"message"`
	AuthorName       string            `json:"author_name"`
	AuthorEmail      string            `json:"author_email"`
	AuthoredDate     gitTS             `json:"authored_date"`
	CommitterName    string            `json:"committer_name"`
	CommitterEmail   string            `json:"committer_email"`
	CommittedDate    gitTS             `json:"committed_date"`
	Trailers         map[string]string `json:"trailers"`
	ExtendedTrailers map[string]any    `json:"extended_trailers"`
	WebURL           string            `json:"web_url"`
}

type runnerJSON struct {
	ID          int64   `json:"id"`
	Description string  `json:"description"`
	IPAddress   *string `json:"ip_address"`
	Active      bool    `json:"active"`
	Paused      bool    `json:"paused"`
	IsShared    bool    `json:"is_shared"`
	RunnerType  string  `json:"runner_type"`
	Name        string  `json:"name"`
	Online      bool    `json:"online"`
	Status      string  `json:"status"`
}

// jobJSON is an item of GET /projects/:id/pipelines/:pipeline_id/jobs.
type jobJSON struct {
	ID                int64             `json:"id"`
	Status            string            `json:"status"`
	Stage             string            `json:"stage"`
	Name              string            `json:"name"`
	Ref               string            `json:"ref"`
	Tag               bool              `json:"tag"`
	Coverage          *fraction         `json:"coverage"`
	AllowFailure      bool              `json:"allow_failure"`
	CreatedAt         ts                `json:"created_at"`
	StartedAt         ts                `json:"started_at"`
	FinishedAt        ts                `json:"finished_at"`
	ErasedAt          ts                `json:"erased_at"`
	Duration          *fraction         `json:"duration"`
	QueuedDuration    *fraction         `json:"queued_duration"`
	User              userJSON          `json:"user"`
	Commit            jobCommitJSON     `json:"commit"`
	Pipeline          pipelineBasicJSON `json:"pipeline"`
	FailureReason     string            `json:"failure_reason,omitempty"` // only on failed jobs, as GitLab
	WebURL            string            `json:"web_url"`
	Project           map[string]bool   `json:"project"`
	Artifacts         []any             `json:"artifacts"`
	ArtifactsExpireAt ts                `json:"artifacts_expire_at"`
	TagList           []string          `json:"tag_list"`
	Runner            *runnerJSON       `json:"runner"`
	RunnerManager     any               `json:"runner_manager"`
	Archived          bool              `json:"archived"`
}

func (pl *pipeline) jobJSON(base string, j job, commit jobCommitJSON) jobJSON {
	out := jobJSON{
		ID: j.id, Status: j.status, Stage: j.stage, Name: j.name, Ref: pl.ref,
		CreatedAt: ts(j.createdAt), StartedAt: ts(j.startedAt), FinishedAt: ts(j.finishedAt),
		User:          pl.user.full(base),
		Commit:        commit,
		Pipeline:      pl.basicJSON(base),
		FailureReason: j.failureReason,
		WebURL:        fmt.Sprintf("%s/%s/-/jobs/%d", base, pl.p.fullPath(), j.id),
		Project:       map[string]bool{"ci_job_token_scope_enabled": false},
		Artifacts:     []any{},
		TagList:       []string{"docker"},
	}
	if j.queued >= 0 {
		out.QueuedDuration = fractionPtr(math.Round(j.queued*1000) / 1000)
	}
	if !j.startedAt.IsZero() {
		out.Runner = &runnerJSON{
			ID: 12 + j.id%3, Description: fmt.Sprintf("shared-runner-%d", 1+j.id%3), Active: true,
			IsShared: true, RunnerType: "instance_type", Name: "gitlab-runner", Online: true, Status: "online",
		}
	}
	if !j.finishedAt.IsZero() {
		out.Duration = fractionPtr(j.finishedAt.Sub(j.startedAt).Seconds())
	}
	return out
}

func (pl *pipeline) commitJSON(base string) jobCommitJSON {
	return pl.p.commitJSON(base, pl.p.commit(pl.head))
}

func (p *project) commitJSON(base string, c commitInfo) jobCommitJSON {
	return jobCommitJSON{
		ID: c.sha, ShortID: c.sha[:8], CreatedAt: gitTS(c.committedAt),
		ParentIDs: c.parents, Title: c.title, Message: c.message,
		AuthorName: c.author.name, AuthorEmail: c.author.username + "@example.com", AuthoredDate: gitTS(c.authoredAt),
		CommitterName: c.committer.name, CommitterEmail: c.committer.username + "@example.com", CommittedDate: gitTS(c.committedAt),
		Trailers: map[string]string{}, ExtendedTrailers: map[string]any{},
		WebURL: fmt.Sprintf("%s/%s/-/commit/%s", base, p.fullPath(), c.sha),
	}
}

type namespaceJSON struct {
	ID        int64   `json:"id"`
	Name      string  `json:"name"`
	Path      string  `json:"path"`
	Kind      string  `json:"kind"`
	FullPath  string  `json:"full_path"`
	ParentID  *int64  `json:"parent_id"`
	AvatarURL *string `json:"avatar_url"`
	WebURL    string  `json:"web_url"`
}

// projectSimpleJSON is an item of GET /projects?simple=true.
type projectSimpleJSON struct {
	ID                int64         `json:"id"`
	Description       string        `json:"description"`
	Name              string        `json:"name"`
	NameWithNamespace string        `json:"name_with_namespace"`
	Path              string        `json:"path"`
	PathWithNamespace string        `json:"path_with_namespace"`
	CreatedAt         ts            `json:"created_at"`
	DefaultBranch     string        `json:"default_branch"`
	TagList           []string      `json:"tag_list"`
	Topics            []string      `json:"topics"`
	SSHURLToRepo      string        `json:"ssh_url_to_repo"`
	HTTPURLToRepo     string        `json:"http_url_to_repo"`
	WebURL            string        `json:"web_url"`
	ReadmeURL         string        `json:"readme_url"`
	ForksCount        int           `json:"forks_count"`
	AvatarURL         *string       `json:"avatar_url"`
	StarCount         int           `json:"star_count"`
	LastActivityAt    ts            `json:"last_activity_at"`
	Namespace         namespaceJSON `json:"namespace"`
}

type accessJSON struct {
	AccessLevel       int `json:"access_level"`
	NotificationLevel int `json:"notification_level"`
}

// projectJSON is an item of GET /projects and GET /projects/:id.
type projectJSON struct {
	projectSimpleJSON
	ContainerRegistryImagePrefix  string            `json:"container_registry_image_prefix"`
	Links                         map[string]string `json:"_links"`
	PackagesEnabled               bool              `json:"packages_enabled"`
	EmptyRepo                     bool              `json:"empty_repo"`
	Archived                      bool              `json:"archived"`
	Visibility                    string            `json:"visibility"`
	ResolveOutdatedDiffDiscussion bool              `json:"resolve_outdated_diff_discussions"`
	ContainerRegistryEnabled      bool              `json:"container_registry_enabled"`
	IssuesEnabled                 bool              `json:"issues_enabled"`
	MergeRequestsEnabled          bool              `json:"merge_requests_enabled"`
	WikiEnabled                   bool              `json:"wiki_enabled"`
	JobsEnabled                   bool              `json:"jobs_enabled"`
	SnippetsEnabled               bool              `json:"snippets_enabled"`
	CanCreateMergeRequestIn       bool              `json:"can_create_merge_request_in"`
	IssuesAccessLevel             string            `json:"issues_access_level"`
	RepositoryAccessLevel         string            `json:"repository_access_level"`
	MergeRequestsAccessLevel      string            `json:"merge_requests_access_level"`
	BuildsAccessLevel             string            `json:"builds_access_level"`
	SharedRunnersEnabled          bool              `json:"shared_runners_enabled"`
	CreatorID                     int64             `json:"creator_id"`
	ImportStatus                  string            `json:"import_status"`
	OpenIssuesCount               int               `json:"open_issues_count"`
	UpdatedAt                     ts                `json:"updated_at"`
	CIDefaultGitDepth             int               `json:"ci_default_git_depth"`
	PublicJobs                    bool              `json:"public_jobs"`
	SharedWithGroups              []any             `json:"shared_with_groups"`
	OnlyAllowMergeIfPipeline      bool              `json:"only_allow_merge_if_pipeline_succeeds"`
	AllowMergeOnSkippedPipeline   bool              `json:"allow_merge_on_skipped_pipeline"`
	OnlyAllowMergeIfDiscussions   bool              `json:"only_allow_merge_if_all_discussions_are_resolved"`
	RemoveSourceBranchAfterMerge  bool              `json:"remove_source_branch_after_merge"`
	RequestAccessEnabled          bool              `json:"request_access_enabled"`
	MergeMethod                   string            `json:"merge_method"`
	SquashOption                  string            `json:"squash_option"`
	AutocloseReferencedIssues     bool              `json:"autoclose_referenced_issues"`
	Permissions                   struct {
		ProjectAccess *accessJSON `json:"project_access"`
		GroupAccess   *accessJSON `json:"group_access"`
	} `json:"permissions"`
}

func (p *project) simpleJSON(base string) projectSimpleJSON {
	host := hostOf(base)
	return projectSimpleJSON{
		ID: p.id, Description: p.description, Name: p.name,
		NameWithNamespace: p.group.fullName() + " / " + p.name,
		Path:              p.path, PathWithNamespace: p.fullPath(),
		CreatedAt: ts(p.createdAt), DefaultBranch: p.defaultBranch(),
		TagList: p.topics, Topics: p.topics,
		SSHURLToRepo:   "git@" + host + ":" + p.fullPath() + ".git",
		HTTPURLToRepo:  base + "/" + p.fullPath() + ".git",
		WebURL:         base + "/" + p.fullPath(),
		ReadmeURL:      base + "/" + p.fullPath() + "/-/blob/main/README.md",
		StarCount:      int(p.id % 7),
		LastActivityAt: ts(p.lastActive),
		Namespace: namespaceJSON{
			ID: p.group.id, Name: p.group.name, Path: p.group.path, Kind: "group",
			FullPath: p.group.fullPath(), WebURL: base + "/groups/" + p.group.fullPath(),
			ParentID: p.group.parentID(),
		},
	}
}

func (g *group) parentID() *int64 {
	if g.parent == nil {
		return nil
	}
	id := g.parent.id
	return &id
}

func (p *project) fullJSON(base string) projectJSON {
	api := base + "/api/v4/projects/" + strconv.FormatInt(p.id, 10)
	j := projectJSON{
		projectSimpleJSON:            p.simpleJSON(base),
		ContainerRegistryImagePrefix: "registry." + hostOf(base) + "/" + p.fullPath(),
		Links: map[string]string{
			"self": api, "issues": api + "/issues", "merge_requests": api + "/merge_requests",
			"repo_branches": api + "/repository/branches", "labels": api + "/labels",
			"events": api + "/events", "members": api + "/members", "cluster_agents": api + "/cluster_agents",
		},
		PackagesEnabled: true, Archived: p.archived, Visibility: "private",
		ContainerRegistryEnabled: true, IssuesEnabled: true, MergeRequestsEnabled: true,
		WikiEnabled: true, JobsEnabled: true, SnippetsEnabled: true, CanCreateMergeRequestIn: true,
		IssuesAccessLevel: "enabled", RepositoryAccessLevel: "enabled",
		MergeRequestsAccessLevel: "enabled", BuildsAccessLevel: "enabled",
		SharedRunnersEnabled: true, CreatorID: firstUserID, ImportStatus: "none",
		UpdatedAt: ts(p.lastActive), CIDefaultGitDepth: 20, PublicJobs: true,
		SharedWithGroups: []any{}, MergeMethod: "rebase_merge", SquashOption: "default_off",
		AutocloseReferencedIssues: true,
	}
	j.Permissions.GroupAccess = &accessJSON{AccessLevel: 40, NotificationLevel: 3}
	return j
}

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "gitlab.sim"
}
