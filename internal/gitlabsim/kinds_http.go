package gitlabsim

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// matchKindRoute matches the routes of the kinds beyond projects, merge
// requests and pipelines. segs[1] is always the project.
func matchKindRoute(segs []string) (route, []string) {
	n := len(segs)
	if n < 3 || segs[0] != "projects" {
		return route{}, nil
	}
	at := func(i int, s string) bool { return i < n && segs[i] == s }
	r := func(t string, h func(*Sim, *call)) route { return route{t, h, false} }
	pid := segs[1]
	switch {
	case n == 4 && at(2, "repository") && at(3, "commits"):
		return r("/projects/:id/repository/commits", (*Sim).listCommits), []string{pid}
	case n == 5 && at(2, "repository") && at(3, "commits"):
		return r("/projects/:id/repository/commits/:sha", (*Sim).getCommit), []string{pid, segs[4]}
	case n == 4 && at(2, "repository") && at(3, "branches"):
		return r("/projects/:id/repository/branches", (*Sim).listBranches), []string{pid}
	case n == 5 && at(2, "repository") && at(3, "branches"):
		return r("/projects/:id/repository/branches/:branch", (*Sim).getBranch), []string{pid, segs[4]}
	case n == 4 && at(2, "repository") && at(3, "tags"):
		return r("/projects/:id/repository/tags", (*Sim).listTags), []string{pid}
	case n == 3 && at(2, "releases"):
		return r("/projects/:id/releases", (*Sim).listReleases), []string{pid}
	case n == 3 && at(2, "issues"):
		return r("/projects/:id/issues", (*Sim).listIssues), []string{pid}
	case n == 5 && at(2, "issues") && at(4, "notes"):
		return r("/projects/:id/issues/:issue_iid/notes", (*Sim).listIssueNotes), []string{pid, segs[3]}
	case n == 5 && at(2, "merge_requests") && at(4, "notes"):
		return r("/projects/:id/merge_requests/:merge_request_iid/notes", (*Sim).listMRNotes), []string{pid, segs[3]}
	case n == 5 && at(2, "merge_requests") && at(4, "approvals"):
		return r("/projects/:id/merge_requests/:merge_request_iid/approvals", (*Sim).getApprovals), []string{pid, segs[3]}
	case n == 5 && at(2, "merge_requests") && at(4, "diffs"):
		return r("/projects/:id/merge_requests/:merge_request_iid/diffs", (*Sim).listDiffs), []string{pid, segs[3]}
	case n == 5 && at(2, "merge_requests") && at(4, "changes"):
		return r("/projects/:id/merge_requests/:merge_request_iid/changes", (*Sim).getMRChanges), []string{pid, segs[3]}
	case n == 5 && at(2, "merge_requests") && at(4, "commits"):
		return r("/projects/:id/merge_requests/:merge_request_iid/commits", (*Sim).listMRCommits), []string{pid, segs[3]}
	case n == 3 && at(2, "events"):
		return r("/projects/:id/events", (*Sim).listEvents), []string{pid}
	case n == 3 && at(2, "deployments"):
		return r("/projects/:id/deployments", (*Sim).listDeployments), []string{pid}
	case n == 3 && at(2, "environments"):
		return r("/projects/:id/environments", (*Sim).listEnvironments), []string{pid}
	case n == 4 && at(2, "environments"):
		return r("/projects/:id/environments/:environment_id", (*Sim).getEnvironment), []string{pid, segs[3]}
	case n == 3 && at(2, "jobs"):
		return r("/projects/:id/jobs", (*Sim).listProjectJobs), []string{pid}
	case n == 4 && at(2, "registry") && at(3, "repositories"):
		return r("/projects/:id/registry/repositories", (*Sim).listRegistryRepos), []string{pid}
	case n == 6 && at(2, "registry") && at(3, "repositories") && at(5, "tags"):
		return r("/projects/:id/registry/repositories/:repository_id/tags", (*Sim).listRegistryTags), []string{pid, segs[4]}
	case n == 7 && at(2, "registry") && at(3, "repositories") && at(5, "tags"):
		return r("/projects/:id/registry/repositories/:repository_id/tags/:tag_name", (*Sim).getRegistryTag), []string{pid, segs[4], segs[6]}
	}
	return route{}, nil
}

// inProject runs f on the request's project under the read lock, or
// answers 404. f sets headers and returns what to answer, or nil when it
// answered itself; the answer is written after the lock is released, so a
// slow client never holds up Advance.
func (s *Sim) inProject(c *call, f func(p *project) any) {
	s.mu.RLock()
	p := s.findProject(c.params[0])
	var v any
	if p != nil {
		v = f(p)
	}
	s.mu.RUnlock()
	switch {
	case p == nil:
		c.notFound("Project Not Found")
	case v != nil:
		c.ok(v)
	}
}

// inMR is inProject for routes under a merge request. An iid that is not
// a number is refused with 400 before the project is looked up, as Grape
// validates GitLab's parameters first.
func (s *Sim) inMR(c *call, f func(m *mergeRequest) any) {
	iid, err := strconv.ParseInt(c.params[1], 10, 64)
	if err != nil {
		c.badRequest("merge_request_iid is invalid")
		return
	}
	s.inProject(c, func(p *project) any {
		if iid < 1 || iid > int64(len(p.mrs)) {
			c.notFound("Not found")
			return nil
		}
		return f(p.mrs[iid-1])
	})
}

// pageOf answers one offset page of list, with GitLab's headers.
func pageOf[T any](c *call, list []T) []T {
	pg := c.paging()
	lo, hi := pg.bounds(len(list))
	pg.headers(c, len(list))
	return list[lo:hi]
}

func mapJSON[T, J any](list []T, f func(T) J) []J {
	out := make([]J, len(list))
	for i, x := range list {
		out[i] = f(x)
	}
	return out
}

// timeParam reads one ISO 8601 time parameter; zero when absent.
func (c *call) timeParam(name string) (time.Time, bool) {
	v := c.q.Get(name)
	if v == "" {
		return time.Time{}, true
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, true
		}
	}
	c.badRequest(name + " is invalid")
	return time.Time{}, false
}

func (c *call) oneOf(name, def string, valid ...string) (string, bool) {
	v := cmp.Or(c.q.Get(name), def)
	if !slices.Contains(valid, v) {
		c.badRequest(name + " does not have a valid value")
		return "", false
	}
	return v, true
}

// ---- repository ----

// refCommits resolves ref_name to the commits reachable from it: extra
// (branch commits not on main, oldest first) above main[:upTo] and the root.
func (p *project) refCommits(ref string) (extra []commitRef, upTo int, ok bool) {
	if ref == "" || ref == p.defaultBranch() || ref == "HEAD" {
		return nil, len(p.main), true
	}
	if ref == p.relBranch && ref != "" {
		return nil, p.relIdx + 1, true
	}
	if m := p.mrByBranch[ref]; m != nil {
		if m.state == "merged" {
			return nil, m.mainIdx + m.nCommits, true
		}
		for k := range m.nCommits {
			extra = append(extra, commitRef{m: m, k: k})
		}
		return extra, p.headAt(m.headAt.Add(-time.Duration(m.nCommits)*m.commitGap)) + 1, true
	}
	for _, t := range p.gitTags {
		if t.name == ref {
			return nil, t.idx + 1, true
		}
	}
	return nil, 0, false
}

// listCommits answers GET /projects/:id/repository/commits, newest first.
// Like GitLab it sends no X-Total or X-Total-Pages here.
func (s *Sim) listCommits(c *call) {
	if _, ok := c.oneOf("order", "default", "default", "topo"); !ok {
		return
	}
	since, ok := c.timeParam("since")
	if !ok {
		return
	}
	until, ok := c.timeParam("until")
	if !ok {
		return
	}
	stats := c.q.Get("with_stats") == "true"
	s.inProject(c, func(p *project) any {
		extra, upTo, ok := p.refCommits(c.q.Get("ref_name"))
		if !ok {
			c.notFound("Commit Not Found")
			return nil
		}
		// Newest first: the branch's own commits, then main's below the
		// fork point, then the root.
		var items []commitRef
		for i := len(extra) - 1; i >= 0; i-- {
			if within(p.committedAt(extra[i]), since, until) {
				items = append(items, extra[i])
			}
		}
		lo, hi := span(upTo, func(i int) time.Time { return p.main[i].at }, since, until)
		rootIn := within(p.root, since, until)
		total := len(items) + hi - lo
		if rootIn {
			total++
		}
		pg := c.paging()
		a, b := pg.bounds(total)
		out := make([]commitListJSON, 0, b-a)
		for i := a; i < b; i++ {
			var ref commitRef
			switch j := i - len(items); {
			case j < 0:
				ref = items[i]
			case j < hi-lo:
				ref = p.main[hi-1-j].c
			default:
				ref = commitRef{}
			}
			out = append(out, p.commitListJSON(c.base, p.commit(ref), stats))
		}
		pg.headersCounted(c, total, false)
		return out
	})
}

// findCommit looks a commit up by sha, branch or tag name. It scans, which
// is fine for a lookup tools make now and then.
func (p *project) findCommit(ref string) (commitRef, bool) {
	if extra, upTo, ok := p.refCommits(ref); ok {
		if len(extra) > 0 {
			return extra[len(extra)-1], true
		}
		return p.mainRef(upTo - 1), true
	}
	if len(ref) < 7 {
		return commitRef{}, false
	}
	match := func(c commitRef) bool { return strings.HasPrefix(p.shaOf(c), ref) }
	for i := -1; i < len(p.main); i++ {
		if match(p.mainRef(i)) {
			return p.mainRef(i), true
		}
	}
	for _, m := range p.mrs {
		for k := range m.nCommits {
			if c := (commitRef{m: m, k: k}); match(c) {
				return c, true
			}
		}
	}
	return commitRef{}, false
}

type commitSingleJSON struct {
	commitListJSON
	LastPipeline *pipelineBasicJSON `json:"last_pipeline"`
	Status       *string            `json:"status"`
	ProjectID    int64              `json:"project_id"`
}

func (s *Sim) getCommit(c *call) {
	s.inProject(c, func(p *project) any {
		ref, ok := p.findCommit(c.params[1])
		if !ok {
			c.notFound("Commit Not Found")
			return nil
		}
		out := commitSingleJSON{commitListJSON: p.commitListJSON(c.base, p.commit(ref), true), ProjectID: p.id}
		for i := len(p.pipes) - 1; i >= 0; i-- {
			if pl := p.pipes[i]; pl.head == ref {
				b := pl.basicJSON(c.base)
				out.LastPipeline, out.Status = &b, strp(pl.status)
				break
			}
		}
		return out
	})
}

func (s *Sim) listBranches(c *call) {
	sortBy, ok := c.oneOf("sort", "name_asc", "name_asc", "updated_asc", "updated_desc")
	if !ok {
		return
	}
	search := strings.ToLower(c.q.Get("search"))
	s.inProject(c, func(p *project) any {
		var list []branch
		for _, b := range p.branches() {
			if search == "" || strings.Contains(strings.ToLower(b.name), search) {
				list = append(list, b)
			}
		}
		slices.SortStableFunc(list, func(a, b branch) int {
			switch sortBy {
			case "updated_asc":
				return p.committedAt(a.head).Compare(p.committedAt(b.head))
			case "updated_desc":
				return p.committedAt(b.head).Compare(p.committedAt(a.head))
			}
			return strings.Compare(a.name, b.name)
		})
		return mapJSON(pageOf(c, list), func(b branch) branchJSON { return p.branchJSON(c.base, b) })
	})
}

func (s *Sim) getBranch(c *call) {
	s.inProject(c, func(p *project) any {
		for _, b := range p.branches() {
			if b.name == c.params[1] {
				return p.branchJSON(c.base, b)
			}
		}
		c.notFound("Branch Not Found")
		return nil
	})
}

func (s *Sim) listTags(c *call) {
	orderBy, ok := c.oneOf("order_by", "updated", "name", "updated", "version")
	if !ok {
		return
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return
	}
	search := c.q.Get("search")
	s.inProject(c, func(p *project) any {
		var list []*gitTag
		for _, t := range p.gitTags {
			if search == "" || strings.Contains(t.name, search) {
				list = append(list, t)
			}
		}
		// Tags are numbered in commit order, so by version and by
		// update is one order; by name differs from v1.10.0 on.
		if orderBy == "name" {
			slices.SortStableFunc(list, func(a, b *gitTag) int { return strings.Compare(a.name, b.name) })
		}
		if desc {
			slices.Reverse(list)
		}
		return mapJSON(pageOf(c, list), func(t *gitTag) tagJSON { return p.tagJSON(c.base, t) })
	})
}

func (s *Sim) listReleases(c *call) {
	if _, ok := c.oneOf("order_by", "released_at", "released_at", "created_at"); !ok {
		return
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return
	}
	// created_at and released_at are equal here, so one order serves both.
	s.inProject(c, func(p *project) any {
		list := slices.Clone(p.releases)
		if desc {
			slices.Reverse(list)
		}
		return mapJSON(pageOf(c, list), func(rl *release) releaseJSON { return p.releaseJSON(c.base, rl) })
	})
}

// ---- issues and notes ----

func (s *Sim) listIssues(c *call) {
	state, ok := c.oneOf("state", "all", "opened", "closed", "all")
	if !ok {
		return
	}
	orderBy, ok := c.oneOf("order_by", "created_at", "created_at", "updated_at", "title", "priority", "due_date",
		"relative_position", "label_priority", "milestone_due", "popularity", "weight")
	if !ok {
		return
	}
	scope, ok := c.oneOf("scope", "all", "all", "created_by_me", "assigned_to_me")
	if !ok {
		return
	}
	issueType := c.q.Get("issue_type")
	if issueType != "" && !slices.Contains([]string{"issue", "incident", "test_case", "task"}, issueType) {
		c.badRequest("issue_type does not have a valid value")
		return
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return
	}
	upAfter, upBefore, ok := timeRange(c, "updated")
	if !ok {
		return
	}
	crAfter, crBefore, ok := timeRange(c, "created")
	if !ok {
		return
	}
	labels := multi(c.q, "labels")
	var iids []int64
	for _, v := range multi(c.q, "iids") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			c.badRequest("iids is invalid")
			return
		}
		iids = append(iids, n)
	}
	s.inProject(c, func(p *project) any {
		me := s.w.me
		var preds []func(*issue) bool
		if state != "all" {
			preds = append(preds, func(is *issue) bool { return is.state == state })
		}
		if scope == "created_by_me" {
			preds = append(preds, func(is *issue) bool { return is.author == me })
		} else if scope == "assigned_to_me" {
			preds = append(preds, func(is *issue) bool { return slices.Contains(is.assignees, me) })
		}
		if issueType != "" {
			preds = append(preds, func(is *issue) bool {
				return issueType == "incident" && is.incident || issueType == "issue" && !is.incident
			})
		}
		if !upAfter.IsZero() || !upBefore.IsZero() {
			preds = append(preds, func(is *issue) bool { return within(is.updatedAt, upAfter, upBefore) })
		}
		if !crAfter.IsZero() || !crBefore.IsZero() {
			preds = append(preds, func(is *issue) bool { return within(is.createdAt, crAfter, crBefore) })
		}
		if len(labels) > 0 {
			preds = append(preds, func(is *issue) bool {
				for _, l := range labels {
					if !slices.Contains(is.labels, l) {
						return false
					}
				}
				return true
			})
		}
		if iids != nil {
			preds = append(preds, func(is *issue) bool { return slices.Contains(iids, is.iid) })
		}
		keep := all(preds)
		pg := c.paging()
		var page []*issue
		var total int
		switch orderBy {
		case "updated_at":
			lo, hi := span(len(p.issuesByUpd), func(i int) time.Time { return p.issuesByUpd[i].updatedAt }, upAfter, upBefore)
			page, total = scan(p.issuesByUpd, lo, hi, desc, keep, pg)
		case "title":
			var sorted []*issue
			for _, is := range p.issues {
				if keep == nil || keep(is) {
					sorted = append(sorted, is)
				}
			}
			slices.SortStableFunc(sorted, func(a, b *issue) int {
				r := cmp.Or(strings.Compare(a.title, b.title), cmpInt(a.id, b.id))
				if desc {
					r = -r
				}
				return r
			})
			lo, hi := pg.bounds(len(sorted))
			page, total = sorted[lo:hi], len(sorted)
		default:
			// The other orders need data the simulator does not model
			// (priorities, weights); they fall back to created_at.
			lo, hi := span(len(p.issues), func(i int) time.Time { return p.issues[i].createdAt }, crAfter, crBefore)
			page, total = scan(p.issues, lo, hi, desc, keep, pg)
		}
		pg.headers(c, total)
		return mapJSON(page, func(is *issue) issueJSON { return is.json(c.base) })
	})
}

// notesPage sorts and pages the notes of one MR or issue.
func notesPage(c *call, notes []*note) any {
	orderBy, ok := c.oneOf("order_by", "created_at", "created_at", "updated_at")
	if !ok {
		return nil
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return nil
	}
	list := slices.Clone(notes)
	slices.SortStableFunc(list, func(a, b *note) int {
		x, y := a.createdAt, b.createdAt
		if orderBy == "updated_at" {
			x, y = a.updatedAt, b.updatedAt
		}
		r := cmp.Or(x.Compare(y), cmpInt(a.id, b.id))
		if desc {
			r = -r
		}
		return r
	})
	return mapJSON(pageOf(c, list), func(n *note) noteJSON { return n.json(c.base) })
}

func (s *Sim) listMRNotes(c *call) {
	s.inMR(c, func(m *mergeRequest) any { return notesPage(c, m.notes) })
}

func (s *Sim) listIssueNotes(c *call) {
	s.inProject(c, func(p *project) any {
		iid, err := strconv.ParseInt(c.params[1], 10, 64)
		if err != nil || iid < 1 || iid > int64(len(p.issues)) {
			c.notFound("Not found")
			return nil
		}
		return notesPage(c, p.issues[iid-1].notes)
	})
}

// eventDay reads an events date parameter, YYYY-MM-DD.
func (c *call) eventDay(name string) (time.Time, bool) {
	v := c.q.Get(name)
	if v == "" {
		return time.Time{}, true
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		if d, err = time.Parse(time.RFC3339, v); err == nil {
			d = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		}
	}
	if err != nil {
		c.badRequest(name + " is invalid")
		return time.Time{}, false
	}
	return d, true
}

// listEvents answers GET /projects/:id/events. after and before are dates
// and exclusive, as GitLab documents: after=2025-03-01 starts at
// 2025-03-02T00:00Z, before=2025-03-01 ends before 2025-03-01T00:00Z.
func (s *Sim) listEvents(c *call) {
	action := c.q.Get("action")
	if _, ok := eventActions[action]; action != "" && !ok {
		c.badRequest("action does not have a valid value")
		return
	}
	target := c.q.Get("target_type")
	if target != "" && !slices.Contains(eventTargets, target) {
		c.badRequest("target_type does not have a valid value")
		return
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return
	}
	after, ok := c.eventDay("after")
	if !ok {
		return
	}
	before, ok := c.eventDay("before")
	if !ok {
		return
	}
	s.inProject(c, func(p *project) any {
		lo, hi := 0, len(p.events)
		if !after.IsZero() {
			from := after.AddDate(0, 0, 1)
			lo = sortSearch(hi, func(i int) bool { return !p.events[i].at.Before(from) })
		}
		if !before.IsZero() {
			hi = sortSearch(hi, func(i int) bool { return !p.events[i].at.Before(before) })
		}
		hi = max(hi, lo)
		var preds []func(*event) bool
		if action != "" {
			names := eventActions[action]
			preds = append(preds, func(e *event) bool { return slices.Contains(names, e.action) })
		}
		if target != "" {
			preds = append(preds, func(e *event) bool { return e.targetType() == target })
		}
		pg := c.paging()
		page, total := scan(p.events, lo, hi, desc, all(preds), pg)
		pg.headers(c, total)
		return mapJSON(page, func(e *event) eventJSON { return e.json(c.base) })
	})
}

// ---- merge request details ----

func (s *Sim) getApprovals(c *call) {
	s.inMR(c, func(m *mergeRequest) any { return m.approvalsJSON(c.base, s.w.me) })
}

func (s *Sim) listDiffs(c *call) {
	s.inMR(c, func(m *mergeRequest) any {
		return mapJSON(pageOf(c, m.diffFiles()), diffFile.json)
	})
}

// listMRCommits lists the commits of the MR's latest diff, newest first:
// the rebased ones once it is merged.
func (s *Sim) listMRCommits(c *call) {
	s.inMR(c, func(m *mergeRequest) any {
		list := make([]commitRef, m.nCommits)
		for k := range list {
			list[k] = commitRef{m: m, k: m.nCommits - 1 - k, rebased: m.state == "merged"}
		}
		return mapJSON(pageOf(c, list), func(r commitRef) jobCommitJSON { return m.p.commitJSON(c.base, m.p.commit(r)) })
	})
}

// ---- deployments, environments, jobs ----

var deploymentStatuses = []string{"created", "running", "success", "failed", "canceled", "skipped", "blocked"}

// listDeployments answers GET /projects/:id/deployments with the checks of
// GitLab's DeploymentsFinder: updated_* filters need order_by=updated_at,
// finished_* filters need order_by=finished_at and status=success, and
// order_by=ref is gone since GitLab 16.3.
func (s *Sim) listDeployments(c *call) {
	orderBy, ok := c.oneOf("order_by", "id", "id", "iid", "created_at", "updated_at", "finished_at")
	if !ok {
		return
	}
	desc, ok := sortDesc(c, "asc")
	if !ok {
		return
	}
	status := c.q.Get("status")
	if status != "" && !slices.Contains(deploymentStatuses, status) {
		c.badRequest("status does not have a valid value")
		return
	}
	upAfter, upBefore, ok := timeRange(c, "updated")
	if !ok {
		return
	}
	finAfter, finBefore, ok := timeRange(c, "finished")
	if !ok {
		return
	}
	byUpdated := !upAfter.IsZero() || !upBefore.IsZero()
	byFinished := !finAfter.IsZero() || !finBefore.IsZero()
	bad := func(msg string) {
		writeJSON(c.w, http.StatusBadRequest, map[string]string{"message": "400 Bad request - " + msg})
	}
	switch {
	case byUpdated && byFinished:
		bad("Both `updated_at` filter and `finished_at` filter can not be specified")
		return
	case byUpdated && orderBy != "updated_at":
		bad("`updated_at` filter and `updated_at` sorting must be paired")
		return
	case byFinished && orderBy != "finished_at":
		bad("`finished_at` filter and `finished_at` sorting must be paired")
		return
	case byFinished && status != "success":
		bad("`finished_at` filter must be combined with `success` status filter.")
		return
	case orderBy == "finished_at" && !byFinished && !slices.Contains([]string{"success", "failed", "canceled"}, status):
		bad("`finished_at` sorting requires one of `success`, `failed` or `canceled` status filters, or `finished_at` filters.")
		return
	}
	env := c.q.Get("environment")
	s.inProject(c, func(p *project) any {
		var preds []func(*deployment) bool
		if status != "" {
			preds = append(preds, func(d *deployment) bool { return d.status == status })
		}
		if env != "" {
			preds = append(preds, func(d *deployment) bool { return d.env.name == env })
		}
		if byUpdated {
			preds = append(preds, func(d *deployment) bool { return within(d.updatedAt, upAfter, upBefore) })
		}
		if byFinished {
			preds = append(preds, func(d *deployment) bool {
				return !d.finishedAt.IsZero() && within(d.finishedAt, finAfter, finBefore)
			})
		}
		keep := all(preds)
		pg := c.paging()
		var page []*deployment
		var total int
		switch orderBy {
		case "updated_at":
			lo, hi := span(len(p.deploysUpd), func(i int) time.Time { return p.deploysUpd[i].updatedAt }, upAfter, upBefore)
			page, total = scan(p.deploysUpd, lo, hi, desc, keep, pg)
		case "finished_at":
			var sorted []*deployment
			for _, d := range p.deploys {
				if keep == nil || keep(d) {
					sorted = append(sorted, d)
				}
			}
			slices.SortStableFunc(sorted, func(a, b *deployment) int {
				r := cmp.Or(a.finishedAt.Compare(b.finishedAt), cmpInt(a.id, b.id))
				if desc {
					r = -r
				}
				return r
			})
			lo, hi := pg.bounds(len(sorted))
			page, total = sorted[lo:hi], len(sorted)
		default: // id, iid and created_at share one order
			page, total = scan(p.deploys, 0, len(p.deploys), desc, keep, pg)
		}
		pg.headers(c, total)
		return mapJSON(page, func(d *deployment) deploymentJSON { return d.json(c.base) })
	})
}

func (s *Sim) listEnvironments(c *call) {
	states := c.q.Get("states")
	if states != "" && !slices.Contains([]string{"available", "stopping", "stopped"}, states) {
		c.badRequest("states does not have a valid value")
		return
	}
	name, search := c.q.Get("name"), c.q.Get("search")
	s.inProject(c, func(p *project) any {
		var list []*environment
		for _, e := range p.envs {
			if (states == "" || e.state == states) && (name == "" || e.name == name) &&
				(search == "" || strings.Contains(e.name, search)) {
				list = append(list, e)
			}
		}
		return mapJSON(pageOf(c, list), func(e *environment) environmentJSON { return e.json(c.base, p) })
	})
}

// getEnvironment answers GET /projects/:id/environments/:environment_id:
// the environment with its last deployment, as the listing shows it.
func (s *Sim) getEnvironment(c *call) {
	id, err := strconv.ParseInt(c.params[1], 10, 64)
	if err != nil {
		c.badRequest("environment_id is invalid")
		return
	}
	s.inProject(c, func(p *project) any {
		for _, e := range p.envs {
			if e.id == id {
				return e.singleJSON(c.base, p)
			}
		}
		c.notFound("Not found")
		return nil
	})
}

// listProjectJobs answers GET /projects/:id/jobs: every pipeline's jobs,
// newest first.
func (s *Sim) listProjectJobs(c *call) {
	scopes, ok := jobScopes(c)
	if !ok {
		return
	}
	s.inProject(c, func(p *project) any {
		pg := c.paging()
		off, total := pg.offset(), 0
		var out []jobJSON
		for i := len(p.pipes) - 1; i >= 0; i-- {
			pl := p.pipes[i]
			jobs := pl.jobs()
			var commit *jobCommitJSON
			for k := len(jobs) - 1; k >= 0; k-- {
				j := jobs[k]
				if len(scopes) > 0 && !slices.Contains(scopes, j.status) {
					continue
				}
				if total >= off && total < off+pg.perPage {
					if commit == nil {
						cj := pl.commitJSON(c.base)
						commit = &cj
					}
					out = append(out, pl.jobJSON(c.base, j, *commit))
				}
				total++
			}
		}
		pg.headers(c, total)
		if out == nil {
			out = []jobJSON{}
		}
		return out
	})
}

// ---- container registry ----

func (s *Sim) listRegistryRepos(c *call) {
	withTags, withCount := c.q.Get("tags") == "true", c.q.Get("tags_count") == "true"
	s.inProject(c, func(p *project) any {
		return mapJSON(pageOf(c, p.repos), func(rp *registryRepo) registryRepoJSON {
			j := registryRepoJSON{
				ID: rp.id, Name: rp.name, Path: rp.path(), ProjectID: p.id, Location: rp.location(c.base),
				CreatedAt: ts(rp.createdAt),
			}
			if withCount {
				n := len(rp.tags)
				j.TagsCount = &n
			}
			if withTags {
				j.Tags = mapJSON(rp.tags, func(t *imageTag) registryTagJSON { return t.json(c.base) })
			}
			return j
		})
	})
}

func (s *Sim) findRepo(c *call, p *project) *registryRepo {
	for _, rp := range p.repos {
		if itoa(rp.id) == c.params[1] {
			return rp
		}
	}
	c.notFound("Repository Not Found")
	return nil
}

// listRegistryTags lists a repository's tags by name. Besides offset
// pages it takes pagination=keyset (the registry's own, on GitLab.com):
// the Link header's next URL carries last=<the page's last tag>.
func (s *Sim) listRegistryTags(c *call) {
	keyset := c.q.Get("pagination") == "keyset"
	desc := false
	if keyset {
		var ok bool
		if desc, ok = sortDesc(c, "asc"); !ok {
			return
		}
	}
	s.inProject(c, func(p *project) any {
		rp := s.findRepo(c, p)
		if rp == nil {
			return nil
		}
		if !keyset {
			return mapJSON(pageOf(c, rp.tags), func(t *imageTag) registryTagJSON { return t.json(c.base) })
		}
		list := slices.Clone(rp.tags)
		if desc {
			slices.Reverse(list)
		}
		if last := c.q.Get("last"); last != "" {
			i := slices.IndexFunc(list, func(t *imageTag) bool {
				if desc {
					return t.name < last
				}
				return t.name > last
			})
			if i < 0 {
				i = len(list)
			}
			list = list[i:]
		}
		per := c.paging().perPage
		more := len(list) > per
		list = list[:min(per, len(list))]
		if more {
			c.w.Header().Set("Link", c.linkTo(c.queryWith("last", list[len(list)-1].name, "per_page", strconv.Itoa(per)), "next"))
		}
		return mapJSON(list, func(t *imageTag) registryTagJSON { return t.json(c.base) })
	})
}

func (s *Sim) getRegistryTag(c *call) {
	s.inProject(c, func(p *project) any {
		rp := s.findRepo(c, p)
		if rp == nil {
			return nil
		}
		i, found := slices.BinarySearchFunc(rp.tags, c.params[2], func(t *imageTag, n string) int { return strings.Compare(t.name, n) })
		if !found {
			c.notFound("Tag Not Found")
			return nil
		}
		return rp.tags[i].detailsJSON(c.base)
	})
}
