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
	createdAt time.Time
	projects  []*project
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

	mrs            []*mergeRequest // index iid-1; created_at ascending
	mrsByUpdated   []*mergeRequest // (updated_at, id) ascending
	pipes          []*pipeline     // id ascending; created_at ascending
	pipesByUpdated []*pipeline     // (updated_at, id) ascending
	pipeByID       map[int64]*pipeline
}

func (p *project) fullPath() string { return p.group.path + "/" + p.path }

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
	sha            string
	mergeCommitSHA string
	notes, upvotes int
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
	cancelAt   int // stage a canceled pipeline stopped in
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

	nextMRID   int64
	nextPipeID int64
	nextJobID  int64
	step       uint64
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
	for i := 0; i < o.Projects; i++ {
		g := w.groups[i%len(w.groups)]
		name := projectNames[(i/len(w.groups))%len(projectNames)]
		if n := (i / len(w.groups)) / len(projectNames); n > 0 {
			name = fmt.Sprintf("%s-%d", name, n+1)
		}
		p := &project{
			id:          int64(firstProjectID + i*5 + r.IntN(4)),
			name:        name,
			path:        name,
			description: fmt.Sprintf("The %s service of %s.", name, g.name),
			group:       g,
			createdAt:   ms(start.Add(-time.Duration(30+r.IntN(300)) * 24 * time.Hour)),
			pipeByID:    map[int64]*pipeline{},
			topics:      []string{},
		}
		if r.IntN(4) == 0 {
			p.topics = []string{"go", "service"}
		}
		p.lastActive = p.createdAt
		g.projects = append(g.projects, p)
		w.projects = append(w.projects, p)
		w.byID[p.id] = p
		w.byPath[p.fullPath()] = p
	}
	// A project now and then is archived, but never the first, so a
	// default world always has active projects to list.
	for i, p := range w.projects {
		if i > 0 && i%7 == 6 {
			p.archived = true
		}
	}

	// Creation times first, then ids in global creation order so ids grow
	// with time across the instance like real sequences do.
	type birth struct {
		at  time.Time
		p   *project
		idx int
	}
	var mrBirths, pipeBirths []birth
	for _, p := range w.projects {
		for _, at := range spread(r, start, now, o.MRs) {
			mrBirths = append(mrBirths, birth{at, p, 0})
		}
		for _, at := range recent(r, spread(r, start, now, o.Pipelines), now) {
			pipeBirths = append(pipeBirths, birth{at, p, 0})
		}
	}
	byTime := func(a, b birth) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		switch {
		case a.p.id < b.p.id:
			return -1
		case a.p.id > b.p.id:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(mrBirths, byTime)
	slices.SortStableFunc(pipeBirths, byTime)

	w.nextMRID = firstMRID
	for _, b := range mrBirths {
		m := w.newMR(r, b.p, b.at)
		w.nextMRID++
		w.historyMR(r, m, now)
		b.p.mrs = append(b.p.mrs, m)
	}
	w.nextPipeID = firstPipelineID
	w.nextJobID = firstJobID
	for _, b := range pipeBirths {
		pl := w.newPipeline(r, b.p, b.at)
		w.historyPipeline(r, pl, now)
		b.p.pipes = append(b.p.pipes, pl)
		b.p.pipeByID[pl.id] = pl
	}
	for _, p := range w.projects {
		p.mrsByUpdated = slices.Clone(p.mrs)
		slices.SortFunc(p.mrsByUpdated, cmpMR)
		p.pipesByUpdated = slices.Clone(p.pipes)
		slices.SortFunc(p.pipesByUpdated, cmpPipe)
		if n := len(p.mrsByUpdated); n > 0 && p.mrsByUpdated[n-1].updatedAt.After(p.lastActive) {
			p.lastActive = p.mrsByUpdated[n-1].updatedAt
		}
		if n := len(p.pipesByUpdated); n > 0 && p.pipesByUpdated[n-1].updatedAt.After(p.lastActive) {
			p.lastActive = p.pipesByUpdated[n-1].updatedAt
		}
	}
	return w
}

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
		notes:        r.IntN(12),
		upvotes:      r.IntN(3),
	}
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

// historyMR gives a generated merge request its lifecycle: most merged, some
// closed, the rest still open (a few of those drafts). Nothing happens after
// now.
func (w *world) historyMR(r *rand.Rand, m *mergeRequest, now time.Time) {
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
	pl.failIdx = r.IntN(pl.nJobs - 1) // never the deploy job alone
	pl.failReason = failures[r.IntN(len(failures))]
	pl.cancelAt = r.IntN(3)
	// Pipelines on an MR branch belong to an MR opened before them.
	if n := sort.Search(len(p.mrs), func(i int) bool { return p.mrs[i].createdAt.After(at) }); n > 0 && r.IntN(5) < 2 {
		m := p.mrs[r.IntN(n)]
		if r.IntN(2) == 0 {
			pl.source, pl.ref = "merge_request_event", fmt.Sprintf("refs/merge-requests/%d/head", m.iid)
		} else {
			pl.ref = m.sourceBranch
		}
		pl.sha = m.sha
	} else {
		switch r.IntN(10) {
		case 0:
			pl.source = "schedule"
		case 1:
			pl.source = "web"
		}
	}
	return pl
}

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
		case roll < 78:
			pl.status = "success"
		case roll < 93:
			pl.status = "failed"
		default:
			pl.status = "canceled"
		}
	}
}

// advance is one step of activity at time now.
func (w *world) advance(now time.Time) {
	now = ms(now)
	w.step++
	r := rand.New(rand.NewPCG(uint64(w.seed), w.step))
	n := 1 + r.IntN(3)
	if n > len(w.projects) {
		n = len(w.projects)
	}
	perm := r.Perm(len(w.projects))[:n]
	slices.Sort(perm)
	for _, i := range perm {
		p := w.projects[i]
		w.advanceMRs(r, p, now)
		w.advancePipelines(r, p, now)
	}
}

// nextMRTime is the next updated_at for p's merge requests: now, or just
// after the newest one when the clock has not moved past it.
func nextMRTime(p *project, now time.Time) time.Time {
	if n := len(p.mrsByUpdated); n > 0 {
		if last := p.mrsByUpdated[n-1].updatedAt; !now.After(last) {
			return last.Add(time.Millisecond)
		}
	}
	return now
}

func nextPipeTime(p *project, now time.Time) time.Time {
	if n := len(p.pipesByUpdated); n > 0 {
		if last := p.pipesByUpdated[n-1].updatedAt; !now.After(last) {
			return last.Add(time.Millisecond)
		}
	}
	return now
}

func (p *project) touch(t time.Time) {
	if t.After(p.lastActive) {
		p.lastActive = t
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
		t := nextMRTime(p, now)
		p.mrsByUpdated = removeMR(p.mrsByUpdated, m)
		if r.IntN(4) == 0 {
			m.state, m.closedAt, m.closedBy = "closed", t, w.pickUser(r)
		} else {
			m.state, m.mergedAt, m.mergedBy = "merged", t, w.pickUser(r)
			m.mergeCommitSHA = hexSHA(r)
			if m.draft {
				m.draft = false
				m.title = strings.TrimPrefix(m.title, "Draft: ")
			}
		}
		m.updatedAt = t
		p.mrsByUpdated = append(p.mrsByUpdated, m)
		p.touch(t)
	}
	for range 1 + r.IntN(3) {
		t := nextMRTime(p, now)
		m := w.newMR(r, p, t)
		w.nextMRID++
		p.mrs = append(p.mrs, m)
		p.mrsByUpdated = append(p.mrsByUpdated, m)
		p.touch(t)
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
		t := nextPipeTime(p, now)
		p.pipesByUpdated = removePipe(p.pipesByUpdated, pl)
		if pl.startedAt.IsZero() {
			pl.startedAt = pl.createdAt
		}
		pl.finishedAt = t
		if r.IntN(5) == 0 {
			pl.status = "failed"
			pl.failIdx = r.IntN(pl.nJobs - 1)
			pl.failReason = failures[r.IntN(len(failures))]
		} else {
			pl.status = "success"
		}
		pl.updatedAt = t
		p.pipesByUpdated = append(p.pipesByUpdated, pl)
		p.touch(t)
	}
	for range 1 + r.IntN(3) {
		t := nextPipeTime(p, now)
		pl := w.newPipeline(r, p, t)
		pl.status, pl.startedAt = "running", t
		p.pipes = append(p.pipes, pl)
		p.pipeByID[pl.id] = pl
		p.pipesByUpdated = append(p.pipesByUpdated, pl)
		p.touch(t)
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

// truth lists every merge request, pipeline and job, sorted by id. A job's
// updated_at is the latest of its created_at, started_at and finished_at,
// as the jobs API has no updated_at of its own.
func (w *world) truth() []TruthEvent {
	n := 0
	for _, p := range w.projects {
		n += len(p.mrs) + len(p.pipes)*4
	}
	out := make([]TruthEvent, 0, n)
	for _, p := range w.projects {
		for _, m := range p.mrs {
			out = append(out, TruthEvent{ID: change.MergeRequestID(p.id, m.iid), Kind: change.KindMergeRequest, UpdatedAt: m.updatedAt})
		}
		for _, pl := range p.pipes {
			out = append(out, TruthEvent{ID: change.PipelineID(p.id, pl.id), Kind: change.KindPipeline, UpdatedAt: pl.updatedAt})
			for _, j := range pl.jobs() {
				out = append(out, TruthEvent{ID: change.JobID(p.id, j.id), Kind: change.KindJob, UpdatedAt: j.updatedAt()})
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
			j.name = "deploy-review"
			if pl.ref == pl.p.defaultBranch() {
				j.name = "deploy-production"
			}
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
