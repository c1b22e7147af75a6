package gitlabsim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// The world is plain data behind Sim.mu. Per project it keeps merge requests
// and pipelines twice: in creation order (iid / id, which is also created_at
// order) and in updated_at order, so listings filter by binary search and
// page by a scan, never by sorting per request.

const historySpan = 180 * 24 * time.Hour

// First ids, chosen to look like a real instance's rather than 1, 2, 3.
const (
	firstUserID     = 4201
	firstGroupID    = 80
	firstProjectID  = 2741
	firstMRID       = 510000
	firstPipelineID = 1200000
	firstJobID      = 7300000
	jobsPerPipeline = 6 // job ids are allocated in blocks of this size
)

type user struct {
	id        int64
	username  string
	name      string
	createdAt time.Time
}

type group struct {
	id        int64
	name      string
	path      string
	parent    *group
	subgroups []*group
	createdAt time.Time
	projects  []*project
}

func (g *group) fullPath() string {
	if g.parent != nil {
		return g.parent.fullPath() + "/" + g.path
	}
	return g.path
}

func (g *group) fullName() string {
	if g.parent != nil {
		return g.parent.fullName() + " / " + g.name
	}
	return g.name
}

type project struct {
	id          int64
	name        string
	path        string
	description string
	group       *group
	createdAt   time.Time
	lastActive  time.Time
	archived    bool
	topics      []string
	owner       *user

	mrs            []*mergeRequest // index iid-1; created_at ascending
	mrsByUpdated   []*mergeRequest // (updated_at, id) ascending
	pipes          []*pipeline     // id ascending; created_at ascending
	pipesByUpdated []*pipeline     // (updated_at, id) ascending
	pipeByID       map[int64]*pipeline

	seed  uint64
	clock time.Time // the newest time anything in the project happened at

	root        time.Time   // the initial commit's date
	main        []mainEntry // commits on the default branch, (committed_date, merge) ascending
	gitTags     []*gitTag   // by commit date ascending
	releases    []*release  // by created_at ascending
	mrByBranch  map[string]*mergeRequest
	issues      []*issue // index iid-1
	issuesByUpd []*issue // (updated_at, id) ascending
	commitNotes []*note
	events      []*event // created_at ascending
	envs        []*environment
	deploys     []*deployment // id ascending
	deploysUpd  []*deployment // (updated_at, id) ascending
	repos       []*registryRepo
	toRerun     []*pipeline // failed pipelines Advance is to run again
	relBranch   string      // the release branch, if cut
	relIdx      int         // its head, in main
}

func (p *project) fullPath() string { return p.group.fullPath() + "/" + p.path }

// next is the time of the next thing to happen in p at wall time now: now,
// or just after the newest thing so far when the clock has not moved past
// it. Every change made by Advance takes its time from here, so within a
// project each kind's updated_at moves strictly forward.
func (p *project) next(now time.Time) time.Time {
	t := now
	if !t.After(p.clock) {
		t = p.clock.Add(time.Millisecond)
	}
	p.clock = t
	return t
}

func (p *project) seen(t time.Time) {
	if t.After(p.clock) {
		p.clock = t
	}
}

type mergeRequest struct {
	id, iid        int64
	p              *project
	title          string
	description    string
	sourceBranch   string
	targetBranch   string
	state          string // opened, closed, merged
	draft          bool
	author         *user
	assignees      []*user
	reviewers      []*user
	mergedBy       *user
	closedBy       *user
	createdAt      time.Time
	updatedAt      time.Time
	mergedAt       time.Time
	closedAt       time.Time
	labels         []string
	sha            string // the source branch's head before the merge
	mergeCommitSHA string
	upvotes        int

	nCommits  int           // 1..5 commits on the source branch
	headAt    time.Time     // committed_date of the last of them
	commitGap time.Duration // between consecutive commits
	mainIdx   int           // index in p.main of its first commit there; -1 when not merged
	approvals []approval
	notes     []*note // created_at ascending
}

type approval struct {
	user *user
	at   time.Time
}

type pipeline struct {
	id, iid    int64
	p          *project
	ref        string
	sha        string
	beforeSHA  string
	source     string
	status     string // success, failed, canceled, running, pending
	user       *user
	createdAt  time.Time
	updatedAt  time.Time
	startedAt  time.Time
	finishedAt time.Time
	queued     float64 // seconds between created and started
	nJobs      int
	jobBase    int64
	failIdx    int
	failReason string
	cancelAt   int       // stage a canceled pipeline stopped in
	head       commitRef // the commit it runs on
	rerunOf    *pipeline // the failed pipeline whose commit this one runs again
}

type world struct {
	seed     int64
	version  string
	created  time.Time
	users    []*user
	me       *user // the token's user
	groups   []*group
	projects []*project
	byID     map[int64]*project
	byPath   map[string]*project

	nextMRID     int64
	nextPipeID   int64
	nextJobID    int64
	nextNoteID   int64
	nextIssueID  int64
	nextEventID  int64
	nextDeployID int64
	nextEnvID    int64
	nextRepoID   int64
	step         uint64
}

var (
	groupNames   = []string{"acme", "platform", "data", "mobile", "infra", "security", "payments", "growth"}
	projectNames = []string{"web", "api", "billing", "auth", "gateway", "worker", "search", "notifications", "mobile-app", "docs", "scheduler", "ledger", "reports", "cli", "sdk", "ingest"}
	userNames    = [][2]string{
		{"ada", "Ada Lovelace"}, {"grace", "Grace Hopper"}, {"linus", "Linus Torvalds"},
		{"margaret", "Margaret Hamilton"}, {"ken", "Ken Thompson"}, {"barbara", "Barbara Liskov"},
		{"dennis", "Dennis Ritchie"}, {"frances", "Frances Allen"}, {"edsger", "Edsger Dijkstra"},
		{"radia", "Radia Perlman"}, {"donald", "Donald Knuth"}, {"hedy", "Hedy Lamarr"},
	}
	allLabels  = []string{"bug", "feature", "backend", "frontend", "documentation", "security", "performance", "tech-debt", "ci"}
	verbs      = []string{"Add", "Fix", "Refactor", "Remove", "Update", "Improve", "Speed up", "Document", "Simplify", "Handle"}
	subjects   = []string{"login flow", "rate limiter", "retry logic", "cache invalidation", "pagination", "webhook handler", "metrics export", "error messages", "config loading", "database migration", "health check", "CSV export", "search index", "session timeout", "audit log"}
	failures   = []string{"script_failure", "script_failure", "script_failure", "runner_system_failure", "stuck_or_timeout_failure", "api_failure", "unknown_failure"}
	testJobs   = []string{"unit-tests", "lint", "integration-tests", "security-scan"}
	stageNames = []string{"build", "test", "deploy"}
)

func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func hexSHA(r *rand.Rand) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 40)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

func slug(s string) string {
	s = strings.ToLower(s)
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}

// buildWorld creates the history: everything happened in the 180 days
// before now, and nothing after it.
func buildWorld(o Options, now time.Time) *world {
	now = ms(now)
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x6c6162747261696c))
	w := &world{
		seed:    o.Seed,
		version: o.Version,
		created: now,
		byID:    map[int64]*project{},
		byPath:  map[string]*project{},
	}
	start := now.Add(-historySpan)
	for i, un := range userNames {
		w.users = append(w.users, &user{
			id:        int64(firstUserID + i*7),
			username:  un[0],
			name:      un[1],
			createdAt: ms(start.Add(-time.Duration(400+i*13) * 24 * time.Hour)),
		})
	}
	w.me = w.users[0]
	for g := 0; g < o.Groups; g++ {
		name := groupNames[g%len(groupNames)]
		if g >= len(groupNames) {
			name = fmt.Sprintf("%s-%d", name, g/len(groupNames)+1)
		}
		w.groups = append(w.groups, &group{
			id: int64(firstGroupID + g*3), name: strings.ToUpper(name[:1]) + name[1:], path: name,
			createdAt: ms(start.Add(-time.Duration(200+g) * 24 * time.Hour)),
		})
	}
	// The first group has a subgroup holding the last project once there
	// are three, so include_subgroups=true lists more than without.
	var tools *group
	if o.Projects >= 3 {
		g0 := w.groups[0]
		tools = &group{id: g0.id + 1, name: "Tools", path: "tools", parent: g0, createdAt: g0.createdAt.Add(24 * time.Hour)}
		g0.subgroups = append(g0.subgroups, tools)
	}
	top := len(w.groups)
	for i := 0; i < o.Projects; i++ {
		g := w.groups[i%top]
		name := projectNames[(i/top)%len(projectNames)]
		if n := (i / top) / len(projectNames); n > 0 {
			name = fmt.Sprintf("%s-%d", name, n+1)
		}
		if tools != nil && i == o.Projects-1 {
			g = tools
		}
		p := &project{
			id:          int64(firstProjectID + i*5 + r.IntN(4)),
			name:        name,
			path:        name,
			description: fmt.Sprintf("The %s service of %s.", name, g.fullName()),
			group:       g,
			createdAt:   ms(start.Add(-time.Duration(30+r.IntN(300)) * 24 * time.Hour)),
			pipeByID:    map[int64]*pipeline{},
			topics:      []string{},
			mrByBranch:  map[string]*mergeRequest{},
		}
		p.seed = mix(uint64(o.Seed), uint64(p.id), 0x5eed)
		p.owner = w.users[r.IntN(len(w.users))]
		// The repository's history starts with the simulated history,
		// so every object of the world is from the last 180 days.
		p.root = ms(start.Add(-time.Duration(r.IntN(3600)) * time.Second))
		if r.IntN(4) == 0 {
			p.topics = []string{"go", "service"}
		}
		p.lastActive = p.createdAt
		g.projects = append(g.projects, p)
		w.projects = append(w.projects, p)
		w.byID[p.id] = p
		w.byPath[p.fullPath()] = p
	}
	if tools != nil {
		w.groups = append(w.groups, tools)
	}
	// Options.Archived projects are archived, from the second on; never
	// the first, so there are always active projects to list.
	for i, p := range w.projects {
		if i > 0 && i <= o.Archived {
			p.archived = true
		}
	}

	// Creation times first, then ids in global creation order so ids grow
	// with time across the instance like real sequences do.
	type birth struct {
		at time.Time
		p  *project
		of *pipeline   // a rerun's failed pipeline
		d  *deployment // the deployment an incident follows
	}
	var mrBirths, pipeBirths []birth
	for _, p := range w.projects {
		for _, at := range spread(r, start, now, o.MRs) {
			mrBirths = append(mrBirths, birth{at: at, p: p})
		}
		for _, at := range recent(r, spread(r, start, now, o.Pipelines), now) {
			pipeBirths = append(pipeBirths, birth{at: at, p: p})
		}
	}
	byTime := func(a, b birth) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmpInt(a.p.id, b.p.id)
	}
	slices.SortStableFunc(mrBirths, byTime)
	slices.SortStableFunc(pipeBirths, byTime)

	var notes []*note
	var events []*event
	w.nextEnvID, w.nextRepoID = firstEnvID, firstRepoID
	w.nextMRID = firstMRID
	for _, b := range mrBirths {
		m := w.newMR(r, b.p, b.at)
		w.nextMRID++
		notes = w.historyMR(r, m, now, notes)
		b.p.mrs = append(b.p.mrs, m)
		b.p.mrByBranch[m.sourceBranch] = m
	}
	for _, p := range w.projects {
		p.buildMain()
		notes = w.historyCommitNotes(r, p, now, notes)
		p.repos = []*registryRepo{w.newRegistryRepo(p)}
		w.historyTags(r, p, now)
		w.historyReleaseBranch(r, p)
		p.envs = w.historyEnvironments(p, now)
	}
	w.nextPipeID = firstPipelineID
	w.nextJobID = firstJobID
	w.nextDeployID = firstDeploymentID
	// Reruns of failed pipelines join the births as they are decided,
	// so pipeline ids still follow creation time across the instance. Each
	// takes the place of its project's next pipeline (never one of the
	// last two, which run still), so a project has Options.Pipelines.
	var reruns []birth
	left, skip := map[*project]int{}, map[*project]int{}
	for _, b := range pipeBirths {
		left[b.p]++
	}
	for i := 0; i < len(pipeBirths) || len(reruns) > 0; {
		var pl *pipeline
		if len(reruns) > 0 && (i == len(pipeBirths) || byTime(reruns[0], pipeBirths[i]) < 0) {
			b := reruns[0]
			reruns = reruns[1:]
			pl = w.newRerun(r, b.of, b.at)
		} else {
			b := pipeBirths[i]
			i++
			left[b.p]--
			if skip[b.p] > 0 && left[b.p] >= 2 {
				skip[b.p]--
				continue
			}
			pl = w.newPipeline(r, b.p, b.at)
		}
		w.historyPipeline(r, pl, now)
		pl.p.pipes = append(pl.p.pipes, pl)
		pl.p.pipeByID[pl.id] = pl
		w.historyDeployment(pl)
		if pl.status != "failed" || !pl.flaky(r) {
			continue
		}
		if at := ms(pl.finishedAt.Add(time.Duration(2+r.IntN(45)) * time.Minute)); at.Before(now) && left[pl.p]-skip[pl.p] > 2 {
			skip[pl.p]++
			b := birth{at: at, p: pl.p, of: pl}
			j, _ := slices.BinarySearchFunc(reruns, b, byTime)
			reruns = slices.Insert(reruns, j, b)
		} else {
			pl.p.toRerun = append(pl.p.toRerun, pl)
		}
	}

	// Issues come after the deployments: some are incidents opened a few
	// hours after a production deployment went wrong. They take the place
	// of ordinary issues, up to half of them, so a project still has
	// Options.Issues.
	var issueBirths []birth
	for _, p := range w.projects {
		var incidents []birth
		for _, d := range p.deploys {
			if d.wentWrong(r) && len(incidents) < o.Issues/2 {
				if at := ms(d.finishedAt.Add(incidentDelay(r))); at.Before(now) {
					incidents = append(incidents, birth{at: at, p: p, d: d})
				}
			}
		}
		for _, at := range spread(r, start, now, o.Issues-len(incidents)) {
			issueBirths = append(issueBirths, birth{at: at, p: p})
		}
		issueBirths = append(issueBirths, incidents...)
	}
	slices.SortStableFunc(issueBirths, byTime)
	w.nextIssueID = firstIssueID
	for _, b := range issueBirths {
		is := w.newIssue(r, b.p, b.at, b.d)
		notes = w.historyIssue(r, is, now, notes)
		b.p.issues = append(b.p.issues, is)
	}

	// Notes and events take ids in global time order, like the sequences
	// of a real instance.
	slices.SortStableFunc(notes, func(a, b *note) int { return a.createdAt.Compare(b.createdAt) })
	w.nextNoteID = firstNoteID
	for _, n := range notes {
		n.id = w.nextNoteID
		w.nextNoteID++
	}
	for _, p := range w.projects {
		events = p.historyEvents(events)
	}
	slices.SortStableFunc(events, func(a, b *event) int { return a.at.Compare(b.at) })
	w.nextEventID = firstEventID
	for _, e := range events {
		e.id = w.nextEventID
		w.nextEventID++
		e.p.events = append(e.p.events, e)
		e.p.touch(e.at)
	}

	for _, p := range w.projects {
		p.mrsByUpdated = slices.Clone(p.mrs)
		slices.SortFunc(p.mrsByUpdated, cmpMR)
		p.pipesByUpdated = slices.Clone(p.pipes)
		slices.SortFunc(p.pipesByUpdated, cmpPipe)
		p.issuesByUpd = slices.Clone(p.issues)
		slices.SortFunc(p.issuesByUpd, cmpIssue)
		p.deploysUpd = slices.Clone(p.deploys)
		slices.SortFunc(p.deploysUpd, cmpDeploy)
		p.seen(p.lastActive)
		if n := len(p.mrsByUpdated); n > 0 {
			p.seen(p.mrsByUpdated[n-1].updatedAt)
		}
		if n := len(p.pipesByUpdated); n > 0 {
			p.seen(p.pipesByUpdated[n-1].updatedAt)
		}
		p.seen(p.root)
		if n := len(p.issuesByUpd); n > 0 {
			p.seen(p.issuesByUpd[n-1].updatedAt)
		}
		if n := len(p.deploysUpd); n > 0 {
			p.seen(p.deploysUpd[n-1].updatedAt)
		}
		for _, e := range p.envs {
			p.seen(e.updatedAt)
		}
		for _, t := range p.gitTags {
			p.seen(t.createdAt)
		}
		for _, rl := range p.releases {
			p.seen(rl.updatedAt())
		}
		for _, rp := range p.repos {
			for _, t := range rp.tags {
				p.seen(t.createdAt)
			}
		}
		for _, n := range p.commitNotes {
			p.seen(n.updatedAt)
		}
		p.seen(ms(now))
	}
	return w
}

// More first ids, again like a real instance's.
const (
	firstNoteID       = 1900000
	firstIssueID      = 330000
	firstEventID      = 41000000
	firstDeploymentID = 93000
	firstEnvID        = 12000
	firstRepoID       = 5100
)

// spread returns n strictly increasing millisecond times in [from, to),
// roughly evenly spaced with jitter.
func spread(r *rand.Rand, from, to time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	if n == 0 {
		return out
	}
	step := to.Sub(from) / time.Duration(n)
	last := time.Time{}
	for i := range out {
		t := ms(from.Add(step*time.Duration(i) + time.Duration(r.Int64N(int64(step)+1))*9/10))
		if !t.After(last) {
			t = last.Add(time.Millisecond)
		}
		out[i] = t
		last = t
	}
	return out
}

// recent moves the last two times into the last few minutes before now, so
// an active project has a pipeline or two still running or pending. Moving
// each to the later of its time and its target keeps the order strict.
func recent(r *rand.Rand, times []time.Time, now time.Time) []time.Time {
	n := len(times)
	for k := min(2, n); k >= 1; k-- {
		target := ms(now.Add(-time.Duration(k-1)*6*time.Minute - time.Minute - time.Duration(r.IntN(240000))*time.Millisecond))
		if i := n - k; target.After(times[i]) {
			times[i] = target
		}
	}
	return times
}

func cmpMR(a, b *mergeRequest) int {
	if c := a.updatedAt.Compare(b.updatedAt); c != 0 {
		return c
	}
	return cmpInt(a.id, b.id)
}

func cmpPipe(a, b *pipeline) int {
	if c := a.updatedAt.Compare(b.updatedAt); c != 0 {
		return c
	}
	return cmpInt(a.id, b.id)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (w *world) pickUser(r *rand.Rand) *user { return w.users[r.IntN(len(w.users))] }

// pickOther picks a user other than the ones given.
func (w *world) pickOther(r *rand.Rand, not ...*user) *user {
	for {
		u := w.pickUser(r)
		if !slices.Contains(not, u) {
			return u
		}
	}
}

// commenter picks who writes a comment on m: mostly its reviewer or
// another colleague, sometimes its author answering them.
func (w *world) commenter(r *rand.Rand, m *mergeRequest) *user {
	switch k := r.IntN(4); {
	case k == 0:
		return m.author
	case k == 1 && len(m.reviewers) > 0:
		return m.reviewers[0]
	}
	return w.pickOther(r, m.author)
}

// between is a millisecond time in [a, b]; a when b is not after a.
func between(r *rand.Rand, a, b time.Time) time.Time {
	if !b.After(a) {
		return a
	}
	return ms(a.Add(time.Duration(r.Int64N(int64(b.Sub(a)) + 1))))
}

func (w *world) newMR(r *rand.Rand, p *project, at time.Time) *mergeRequest {
	iid := int64(len(p.mrs) + 1)
	title := verbs[r.IntN(len(verbs))] + " " + subjects[r.IntN(len(subjects))]
	m := &mergeRequest{
		id:           w.nextMRID,
		iid:          iid,
		p:            p,
		title:        title,
		description:  fmt.Sprintf("## What does this MR do?\n\n%s in %s.\n\nCloses #%d", title, p.name, 1+r.IntN(400)),
		sourceBranch: fmt.Sprintf("%d-%s", iid, slug(title)),
		targetBranch: "main",
		state:        "opened",
		author:       w.pickUser(r),
		createdAt:    at,
		updatedAt:    at,
		sha:          hexSHA(r),
		upvotes:      r.IntN(3),
		nCommits:     1 + r.IntN(5),
		mainIdx:      -1,
	}
	// The branch was pushed shortly before the MR was opened.
	m.headAt = ms(at.Add(-time.Duration(1+r.IntN(30)) * time.Minute))
	m.commitGap = time.Duration(3+r.IntN(60)) * time.Minute
	m.assignees = []*user{m.author}
	if rv := w.pickUser(r); rv != m.author {
		m.reviewers = []*user{rv}
	} else {
		m.reviewers = []*user{}
	}
	nl := r.IntN(3)
	m.labels = []string{}
	for range nl {
		l := allLabels[r.IntN(len(allLabels))]
		if !slices.Contains(m.labels, l) {
			m.labels = append(m.labels, l)
		}
	}
	slices.Sort(m.labels)
	return m
}

var comments = []string{
	"Looks good to me.", "Could we add a test for this?", "Nice catch!",
	"I think this needs a changelog entry.", "Can you rebase on main?", "Thanks, addressed.",
	"What happens when the config is empty?", "LGTM :thumbsup:", "Let's discuss this in the next sync.",
	"This fixes the flaky test for me.",
}

// historyMR gives a generated merge request its lifecycle: most merged, some
// closed, the rest still open (a few of those drafts), with approvals and
// notes that all fall on or before its updated_at. Nothing happens after
// now. It returns notes with the MR's notes added.
func (w *world) historyMR(r *rand.Rand, m *mergeRequest, now time.Time, notes []*note) []*note {
	last := m.createdAt
	roll := r.IntN(100)
	wait := time.Duration(30+r.IntN(60*24*6)) * time.Minute // 30 min .. ~6 days
	end := ms(m.createdAt.Add(wait))
	switch {
	case roll < 76 && end.Before(now):
		m.state, m.mergedAt = "merged", end
		m.mergedBy = w.pickUser(r)
		m.mergeCommitSHA = hexSHA(r)
		last = end
	case roll < 88 && end.Before(now):
		m.state, m.closedAt = "closed", end
		m.closedBy = w.pickUser(r)
		last = end
	default:
		if r.IntN(5) == 0 {
			m.draft = true
			m.title = "Draft: " + m.title
		}
	}
	upd := ms(last.Add(time.Duration(r.IntN(3600000)) * time.Millisecond))
	if upd.After(now) {
		upd = now
	}
	if upd.Before(last) {
		upd = last
	}
	m.updatedAt = upd

	approvers := 0
	switch {
	case m.state == "merged":
		approvers = 1 + r.IntN(2)
	case m.state == "opened" && r.IntN(3) == 0:
		approvers = 1
	}
	approvedBy := []*user{m.author}
	for range approvers {
		u := w.pickOther(r, approvedBy...)
		approvedBy = append(approvedBy, u)
		to := m.updatedAt
		if m.state == "merged" {
			to = m.mergedAt
		}
		at := between(r, m.createdAt, to)
		m.approvals = append(m.approvals, approval{u, at})
		m.notes = append(m.notes, &note{p: m.p, mr: m, body: "approved this merge request", author: u, createdAt: at, updatedAt: at, system: true})
	}
	slices.SortStableFunc(m.approvals, func(a, b approval) int { return a.at.Compare(b.at) })
	// Review comments come before the merge, but for a late one now and
	// then.
	before := m.updatedAt
	if m.state == "merged" {
		before = m.mergedAt
	}
	for range r.IntN(12) {
		at := between(r, m.createdAt, before)
		if r.IntN(10) == 0 {
			at = between(r, m.createdAt, m.updatedAt)
		}
		m.notes = append(m.notes, &note{p: m.p, mr: m, body: comments[r.IntN(len(comments))], author: w.commenter(r, m), createdAt: at, updatedAt: at})
	}
	switch m.state {
	case "merged":
		m.notes = append(m.notes, &note{p: m.p, mr: m, body: "merged", author: m.mergedBy, createdAt: m.mergedAt, updatedAt: m.mergedAt, system: true})
	case "closed":
		m.notes = append(m.notes, &note{p: m.p, mr: m, body: "closed", author: m.closedBy, createdAt: m.closedAt, updatedAt: m.closedAt, system: true})
	}
	slices.SortStableFunc(m.notes, func(a, b *note) int { return a.createdAt.Compare(b.createdAt) })
	return append(notes, m.notes...)
}

func (w *world) newPipeline(r *rand.Rand, p *project, at time.Time) *pipeline {
	pl := &pipeline{
		id:        w.nextPipeID,
		iid:       int64(len(p.pipes) + 1),
		p:         p,
		ref:       "main",
		sha:       hexSHA(r),
		beforeSHA: hexSHA(r),
		source:    "push",
		user:      w.pickUser(r),
		createdAt: at,
		updatedAt: at,
		nJobs:     3 + r.IntN(4),
		jobBase:   w.nextJobID,
		status:    "pending",
	}
	w.nextPipeID++
	w.nextJobID += jobsPerPipeline
	pl.failIdx, pl.failReason = pl.failure(r)
	pl.cancelAt = r.IntN(3)
	// Pipelines on an MR branch belong to an MR opened before them, and run
	// on its head commit.
	if n := sort.Search(len(p.mrs), func(i int) bool { return p.mrs[i].createdAt.After(at) }); n > 0 && r.IntN(5) < 2 {
		m := p.mrs[r.IntN(n)]
		if r.IntN(2) == 0 {
			pl.source, pl.ref = "merge_request_event", fmt.Sprintf("refs/merge-requests/%d/head", m.iid)
		} else {
			pl.ref = m.sourceBranch
		}
		pl.sha = m.sha
		pl.head = commitRef{m: m, k: m.nCommits - 1}
		pl.beforeSHA = zeroSHA
		if m.nCommits > 1 {
			pl.beforeSHA = p.shaOf(commitRef{m: m, k: m.nCommits - 2})
		}
	} else {
		switch r.IntN(10) {
		case 0:
			pl.source = "schedule"
		case 1:
			pl.source = "web"
		}
		// Pipelines on the default branch run on its head at the time.
		i := p.headAt(at)
		pl.head = p.mainRef(i)
		pl.sha = p.shaOf(pl.head)
		pl.beforeSHA = p.shaOf(p.mainRef(p.prevHead(i)))
	}
	return pl
}

// failure picks the job a failing pipeline fails in, and why: a third of
// failures are the deploy job's (a failed deployment on the default
// branch), the rest the build's or a test's.
func (pl *pipeline) failure(r *rand.Rand) (int, string) {
	i := pl.nJobs - 1
	if r.IntN(3) > 0 {
		i = r.IntN(pl.nJobs - 1)
	}
	return i, failures[r.IntN(len(failures))]
}

// newRerun is "Run pipeline" on a failed pipeline's ref: a new pipeline on
// the same commit with the same jobs. (A retry inside the pipeline would
// keep the failed job only as a retried one, which GitLab's job listing
// and labtrail leave out; a new pipeline keeps the failure and the pass of
// one sha both visible.) A rerun passes once it finishes: its failure was
// flaky.
func (w *world) newRerun(r *rand.Rand, of *pipeline, at time.Time) *pipeline {
	p := of.p
	pl := &pipeline{
		id: w.nextPipeID, iid: int64(len(p.pipes) + 1), p: p,
		ref: of.ref, sha: of.sha, beforeSHA: zeroSHA, source: "web", user: of.user,
		createdAt: at, updatedAt: at, nJobs: of.nJobs, jobBase: w.nextJobID, status: "pending",
		failIdx: of.failIdx, failReason: of.failReason, cancelAt: r.IntN(3), head: of.head, rerunOf: of,
	}
	if of.source == "merge_request_event" {
		pl.source, pl.beforeSHA = of.source, of.beforeSHA
	}
	w.nextPipeID++
	w.nextJobID += jobsPerPipeline
	return pl
}

// flaky decides whether a failed pipeline is run again: mostly when the
// failure was the runner's or GitLab's, now and then after a script
// failure that turns out not to be the code's.
func (pl *pipeline) flaky(r *rand.Rand) bool {
	if pl.failReason == "script_failure" {
		return r.IntN(4) == 0
	}
	return r.IntN(3) < 2
}

// zeroSHA is what GitLab shows as before_sha for a branch's first push.
const zeroSHA = "0000000000000000000000000000000000000000"

// historyPipeline finishes a generated pipeline unless it would finish after
// now, in which case it is still running (or pending).
func (w *world) historyPipeline(r *rand.Rand, pl *pipeline, now time.Time) {
	queued := time.Duration(500+r.IntN(60000)) * time.Millisecond
	run := time.Duration(90+r.IntN(1800)) * time.Second
	started := ms(pl.createdAt.Add(queued))
	finished := ms(started.Add(run))
	roll := r.IntN(100)
	switch {
	case started.After(now):
		pl.status, pl.updatedAt = "pending", pl.createdAt
	case finished.After(now):
		pl.status, pl.startedAt, pl.updatedAt = "running", started, started
		pl.queued = started.Sub(pl.createdAt).Seconds()
	default:
		pl.startedAt, pl.finishedAt = started, finished
		pl.queued = started.Sub(pl.createdAt).Seconds()
		pl.updatedAt = ms(finished.Add(time.Duration(5+r.IntN(200)) * time.Millisecond))
		if pl.updatedAt.After(now) {
			pl.updatedAt = now
		}
		switch {
		case roll < 78 || pl.rerunOf != nil:
			pl.status = "success"
		case roll < 93:
			pl.status = "failed"
		default:
			pl.status = "canceled"
		}
	}
}

// advance is one step of activity at time now. Archived projects are read
// only, as on GitLab, so nothing happens in them.
func (w *world) advance(now time.Time) { w.advanceOnly(now, nil) }

// advanceOnly is advance limited to the activities in only (all if nil).
func (w *world) advanceOnly(now time.Time, only map[Activity]bool) {
	do := func(a Activity) bool { return only == nil || only[a] }
	now = ms(now)
	w.step++
	r := rand.New(rand.NewPCG(uint64(w.seed), w.step))
	var active []*project
	for _, p := range w.projects {
		if !p.archived {
			active = append(active, p)
		}
	}
	n := min(1+r.IntN(3), len(active))
	perm := r.Perm(len(active))[:n]
	slices.Sort(perm)
	for _, i := range perm {
		p := active[i]
		if do(ActivityMergeRequests) {
			w.advanceMRs(r, p, now)
		}
		if do(ActivityIssues) {
			w.advanceIssues(r, p, now)
		}
		if do(ActivityDeployments) {
			w.advanceDeployments(r, p, now)
		}
		if do(ActivityPipelines) {
			w.advancePipelines(r, p, now)
		}
		if do(ActivityReleases) {
			w.advanceRelease(r, p, now)
		}
	}
}

// activityInterval is GitLab's Event::RESET_PROJECT_ACTIVITY_INTERVAL: an
// event moves its project's last_activity_at only when that is at least
// this old.
const activityInterval = time.Hour

// touch is what an event does to last_activity_at on GitLab: only events
// (pushes, MRs and issues opened, closed, merged or approved, comments)
// move it, and at most once per activityInterval. Pipelines, jobs,
// deployments, releases, registry pushes and MR edits (labels, title,
// reviewers) create no event and leave it alone.
func (p *project) touch(t time.Time) {
	if !p.lastActive.After(t.Add(-activityInterval)) {
		p.lastActive = t
	}
}

// addMRNote adds a note to m at t, which moves m's updated_at as on GitLab.
func (w *world) addMRNote(m *mergeRequest, n *note) {
	p := m.p
	n.id = w.nextNoteID
	w.nextNoteID++
	n.p, n.mr = p, m
	m.notes = append(m.notes, n)
	if !n.system {
		p.addEvent(w, &event{at: n.createdAt, action: "commented on", author: n.author, n: n})
	}
}

func (w *world) advanceMRs(r *rand.Rand, p *project, now time.Time) {
	// Settle 1-2 open ones first, so the new ones are not settled at birth.
	var open []*mergeRequest
	for _, m := range p.mrs {
		if m.state == "opened" {
			open = append(open, m)
		}
	}
	settle := 1 + r.IntN(2)
	for k := 0; k < settle && len(open) > 0; k++ {
		j := r.IntN(len(open))
		m := open[j]
		open = slices.Delete(open, j, j+1)
		p.mrsByUpdated = removeMR(p.mrsByUpdated, m)
		if r.IntN(4) == 0 || m.targetBranch != p.defaultBranch() {
			t := p.next(now)
			m.state, m.closedAt, m.closedBy = "closed", t, w.pickUser(r)
			w.addMRNote(m, &note{body: "closed", author: m.closedBy, createdAt: t, updatedAt: t, system: true})
			p.addEvent(w, &event{at: t, action: "closed", author: m.closedBy, mr: m})
			m.updatedAt = t
			w.stopReview(p, m, t)
		} else {
			if len(m.approvals) == 0 {
				t := p.next(now)
				u := w.pickOther(r, m.author)
				m.approvals = append(m.approvals, approval{u, t})
				w.addMRNote(m, &note{body: "approved this merge request", author: u, createdAt: t, updatedAt: t, system: true})
				p.touch(t) // GitLab records an "approved" event
			}
			t := p.next(now)
			m.state, m.mergedAt, m.mergedBy = "merged", t, w.pickUser(r)
			m.mergeCommitSHA = hexSHA(r)
			if m.draft {
				m.draft = false
				m.title = strings.TrimPrefix(m.title, "Draft: ")
			}
			w.addMRNote(m, &note{body: "merged", author: m.mergedBy, createdAt: t, updatedAt: t, system: true})
			p.merge(m)
			p.addEvent(w, &event{at: t, action: "accepted", author: m.mergedBy, mr: m})
			p.addEvent(w, &event{at: t, action: "pushed to", author: m.mergedBy, mr: m})
			m.updatedAt = t
			w.stopReview(p, m, t)
		}
		p.mrsByUpdated = append(p.mrsByUpdated, m)
	}
	// A comment on an open MR or two.
	for range r.IntN(3) {
		if len(open) == 0 {
			break
		}
		m := open[r.IntN(len(open))]
		t := p.next(now)
		p.mrsByUpdated = removeMR(p.mrsByUpdated, m)
		w.addMRNote(m, &note{body: comments[r.IntN(len(comments))], author: w.commenter(r, m), createdAt: t, updatedAt: t})
		m.updatedAt = t
		p.mrsByUpdated = append(p.mrsByUpdated, m)
	}
	for range 1 + r.IntN(3) {
		m := w.newMR(r, p, now)
		w.nextMRID++
		if p.relBranch != "" && r.IntN(15) == 0 {
			m.targetBranch = p.relBranch
		}
		// Its commits are pushed first, each at its own instant, then the
		// MR is opened.
		m.commitGap = time.Millisecond
		for range m.nCommits {
			m.headAt = p.next(now)
		}
		t := p.next(now)
		m.createdAt, m.updatedAt = t, t
		p.mrs = append(p.mrs, m)
		p.mrByBranch[m.sourceBranch] = m
		p.mrsByUpdated = append(p.mrsByUpdated, m)
		p.addEvent(w, &event{at: t, action: "opened", author: m.author, mr: m})
		if r.IntN(3) == 0 {
			w.newReview(p, m, t)
		}
	}
}

func (w *world) advancePipelines(r *rand.Rand, p *project, now time.Time) {
	var running []*pipeline
	for _, pl := range p.pipes {
		if pl.status == "running" || pl.status == "pending" {
			running = append(running, pl)
		}
	}
	finish := 1 + r.IntN(2)
	for k := 0; k < finish && len(running) > 0; k++ {
		j := r.IntN(len(running))
		pl := running[j]
		running = slices.Delete(running, j, j+1)
		t := p.next(now)
		p.pipesByUpdated = removePipe(p.pipesByUpdated, pl)
		if pl.startedAt.IsZero() {
			pl.startedAt = pl.createdAt
		}
		pl.finishedAt = t
		if r.IntN(5) == 0 && pl.rerunOf == nil {
			pl.status = "failed"
			pl.failIdx, pl.failReason = pl.failure(r)
		} else {
			pl.status = "success"
		}
		pl.updatedAt = t
		p.pipesByUpdated = append(p.pipesByUpdated, pl)
		w.pipelineFinished(r, pl, now)
		if pl.status == "failed" && pl.flaky(r) {
			p.toRerun = append(p.toRerun, pl)
		}
	}
	for k := range 1 + r.IntN(3) {
		t := p.next(now)
		var pl *pipeline
		if k == 0 && len(p.toRerun) > 0 {
			pl = w.newRerun(r, p.toRerun[0], t)
			p.toRerun = p.toRerun[1:]
		} else {
			pl = w.newPipeline(r, p, t)
		}
		pl.status, pl.startedAt = "running", t
		p.pipes = append(p.pipes, pl)
		p.pipeByID[pl.id] = pl
		p.pipesByUpdated = append(p.pipesByUpdated, pl)
		if d := w.historyDeployment(pl); d != nil {
			p.deploysUpd = append(p.deploysUpd, d)
		}
	}
}
func removeMR(s []*mergeRequest, m *mergeRequest) []*mergeRequest {
	i, ok := slices.BinarySearchFunc(s, m, cmpMR)
	if !ok {
		i = slices.Index(s, m)
	}
	if i < 0 {
		return s
	}
	return slices.Delete(s, i, i+1)
}

func removePipe(s []*pipeline, pl *pipeline) []*pipeline {
	i, ok := slices.BinarySearchFunc(s, pl, cmpPipe)
	if !ok {
		i = slices.Index(s, pl)
	}
	if i < 0 {
		return s
	}
	return slices.Delete(s, i, i+1)
}

// truth lists every object of every kind, sorted by id, with the
// updated_at rules of docs/kinds.md.
func (w *world) truth() []TruthEvent {
	var out []TruthEvent
	add := func(id string, k change.Kind, t time.Time) {
		out = append(out, TruthEvent{ID: id, Kind: k, UpdatedAt: t})
	}
	for _, p := range w.projects {
		for _, m := range p.mrs {
			add(change.MergeRequestID(p.id, m.iid), change.KindMergeRequest, m.updatedAt)
			for _, n := range m.notes {
				add(change.NoteID(p.id, n.id), change.KindNote, n.updatedAt)
			}
		}
		for _, pl := range p.pipes {
			add(change.PipelineID(p.id, pl.id), change.KindPipeline, pl.updatedAt)
			for _, j := range pl.jobs() {
				add(change.JobID(p.id, j.id), change.KindJob, j.updatedAt())
			}
		}
		for i := -1; i < len(p.main); i++ {
			c := p.mainRef(i)
			add(change.CommitID(p.id, p.shaOf(c)), change.KindCommit, p.committedAt(c))
		}
		for _, is := range p.issues {
			add(change.IssueID(p.id, is.iid), change.KindIssue, is.updatedAt)
			for _, n := range is.notes {
				add(change.NoteID(p.id, n.id), change.KindNote, n.updatedAt)
			}
		}
		for _, n := range p.commitNotes {
			add(change.NoteID(p.id, n.id), change.KindNote, n.updatedAt)
		}
		for _, b := range p.branches() {
			add(change.BranchID(p.id, b.name), change.KindBranch, p.committedAt(b.head))
		}
		for _, t := range p.gitTags {
			add(change.TagID(p.id, t.name), change.KindTag, p.committedAt(p.mainRef(t.idx)))
		}
		for _, rl := range p.releases {
			add(change.ReleaseID(p.id, rl.tag.name), change.KindRelease, rl.updatedAt())
		}
		for _, d := range p.deploys {
			add(change.DeploymentID(p.id, d.id), change.KindDeployment, d.updatedAt)
		}
		for _, e := range p.envs {
			add(change.EnvironmentID(p.id, e.id), change.KindEnvironment, e.updatedAt)
		}
		for _, rp := range p.repos {
			for _, t := range rp.tags {
				add(change.ImageID(p.id, rp.id, t.name, t.digest()), change.KindImage, t.createdAt)
			}
		}
	}
	slices.SortFunc(out, func(a, b TruthEvent) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// job is derived from its pipeline on demand: jobs change only when their
// pipeline does, so storing them would only cost memory.
type job struct {
	id            int64
	name, stage   string
	status        string
	failureReason string
	createdAt     time.Time
	startedAt     time.Time
	finishedAt    time.Time
	queued        float64 // seconds; < 0 means null
}

func (j job) updatedAt() time.Time {
	t := j.createdAt
	if j.startedAt.After(t) {
		t = j.startedAt
	}
	if j.finishedAt.After(t) {
		t = j.finishedAt
	}
	return t
}

func (pl *pipeline) stageOf(i int) int {
	switch {
	case i == 0:
		return 0
	case i == pl.nJobs-1:
		return 2
	}
	return 1
}

// jobs returns pl's jobs in id order: one build job, 1-4 test jobs and one
// deploy job, with states and times that agree with the pipeline's.
func (pl *pipeline) jobs() []job {
	out := make([]job, pl.nJobs)
	// The stage the pipeline got to, and how many stages shared its run time.
	reached := 2
	switch pl.status {
	case "failed":
		reached = pl.stageOf(pl.failIdx)
	case "canceled":
		reached = pl.cancelAt
	case "running", "pending":
		reached = 0
	}
	var window time.Duration
	if !pl.finishedAt.IsZero() {
		window = pl.finishedAt.Sub(pl.startedAt) / time.Duration(reached+1)
	}
	for i := range out {
		st := pl.stageOf(i)
		j := job{id: pl.jobBase + int64(i), stage: stageNames[st], createdAt: pl.createdAt, queued: -1}
		switch st {
		case 0:
			j.name = "build"
		case 1:
			j.name = testJobs[(i-1)%len(testJobs)]
		default:
			j.name = pl.deployJobName()
		}
		finishedRun := func() {
			ws := pl.startedAt.Add(window * time.Duration(st))
			off := time.Duration(i%3) * time.Second
			if off > window/10 {
				off = window / 10
			}
			j.startedAt = ms(ws.Add(off))
			j.finishedAt = ms(ws.Add(window))
			j.queued = float64(200+(pl.id+int64(i))%4000) / 1000
		}
		switch pl.status {
		case "pending":
			j.status = "created"
			if st == 0 {
				j.status = "pending"
			}
		case "running":
			j.status = "created"
			if st == 0 {
				j.status, j.startedAt = "running", pl.startedAt
				j.queued = pl.queued
			}
		case "success":
			j.status = "success"
			finishedRun()
		case "failed":
			switch {
			case st < reached:
				j.status = "success"
				finishedRun()
			case st == reached:
				j.status = "success"
				finishedRun()
				if i == pl.failIdx {
					j.status, j.failureReason = "failed", pl.failReason
				}
			default:
				j.status = "skipped"
			}
		case "canceled":
			switch {
			case st < reached:
				j.status = "success"
				finishedRun()
			case st == reached:
				j.status = "canceled"
				finishedRun()
			default:
				j.status = "canceled"
			}
		}
		out[i] = j
	}
	return out
}

func (p *project) defaultBranch() string { return "main" }

// deployJobName names the last job: scheduled and manual runs of the
// default branch deploy to staging, pushes to it deploy to production, and
// a rerun deploys where the pipeline it runs again would have.
func (pl *pipeline) deployJobName() string {
	switch {
	case pl.rerunOf != nil:
		return pl.rerunOf.deployJobName()
	case pl.ref != pl.p.defaultBranch():
		return "deploy-review"
	case pl.source == "schedule" || pl.source == "web":
		return "deploy-staging"
	}
	return "deploy-production"
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
