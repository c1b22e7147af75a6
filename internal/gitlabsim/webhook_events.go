package gitlabsim

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Which hooks an Advance fires is found by comparing the world before and
// after it, rather than by threading a callback through every change: the
// advance code stays as it is, and nothing that changed can be missed.
//
// One user action is everything a project did at one instant: Advance takes
// each action's time from project.next, so within a project an instant
// names one action (a merge: the MR's merge, its note, the source-branch
// rebase push and the push to main). Hooks of one action share their
// X-Gitlab-Event-UUID.

// hook is one payload to deliver.
type hook struct {
	event     string
	eventUUID string
	body      []byte
}

type mrSnap struct {
	state     string
	updatedAt time.Time
	approvals int
	notes     int
}

type issueSnap struct {
	state     string
	updatedAt time.Time
	notes     int
}

type pipeSnap struct {
	status string
	jobs   []string
}

type projSnap struct {
	mrs, pipes, issues, deploys int
	commitNotes, tags, releases int
	mr                          map[*mergeRequest]mrSnap
	issue                       map[*issue]issueSnap
	pipe                        map[*pipeline]pipeSnap
	deploy                      map[*deployment]string
}

type worldSnap map[*project]*projSnap

// snapshot records what Advance can change: only open MRs and issues,
// unfinished pipelines and deployments change; everything else only grows.
func (w *world) snapshot() worldSnap {
	out := worldSnap{}
	for _, p := range w.projects {
		s := &projSnap{
			mrs: len(p.mrs), pipes: len(p.pipes), issues: len(p.issues), deploys: len(p.deploys),
			commitNotes: len(p.commitNotes), tags: len(p.gitTags), releases: len(p.releases),
			mr: map[*mergeRequest]mrSnap{}, issue: map[*issue]issueSnap{},
			pipe: map[*pipeline]pipeSnap{}, deploy: map[*deployment]string{},
		}
		for _, m := range p.mrs {
			if m.state == "opened" {
				s.mr[m] = mrSnap{m.state, m.updatedAt, len(m.approvals), len(m.notes)}
			}
		}
		for _, is := range p.issues {
			if is.state == "opened" {
				s.issue[is] = issueSnap{is.state, is.updatedAt, len(is.notes)}
			}
		}
		for _, pl := range p.pipes {
			if pl.status == "running" || pl.status == "pending" {
				js := pl.jobs()
				st := make([]string, len(js))
				for i, j := range js {
					st[i] = j.status
				}
				s.pipe[pl] = pipeSnap{pl.status, st}
			}
		}
		for _, d := range p.deploys {
			if d.status == "created" || d.status == "running" {
				s.deploy[d] = d.status
			}
		}
		out[p] = s
	}
	return out
}

// fired is a hook found by the diff, before it is numbered and encoded.
type fired struct {
	p     *project
	pi    int
	at    time.Time
	rank  int // order within one action: pushes, then the object, jobs before their pipeline
	event string
	body  func() any
}

// hooksSince lists the hooks for everything that changed since before, in
// the order GitLab would fire them.
func (w *world) hooksSince(before worldSnap, h *webhooks, base string) []hook {
	var fs []fired
	for pi, p := range w.projects {
		s := before[p]
		if s == nil {
			continue
		}
		add := func(at time.Time, rank int, event string, body func() any) {
			fs = append(fs, fired{p: p, pi: pi, at: at, rank: rank, event: event, body: body})
		}
		mrNotes := func(m *mergeRequest, from int) {
			for _, n := range m.notes[from:] {
				if !n.system { // GitLab fires no note hooks for system notes
					add(n.createdAt, 3, "Note Hook", func() any { return w.noteHook(base, n) })
				}
			}
		}
		for i, m := range p.mrs {
			if i >= s.mrs {
				pushed := m.headAt
				add(pushed, 0, "Push Hook", func() any { return w.branchPush(base, m, false) })
				add(m.createdAt, 1, "Merge Request Hook", func() any { return w.mrHook(base, m, "open", nil) })
				mrNotes(m, 0)
				continue
			}
			old, ok := s.mr[m]
			if !ok {
				continue
			}
			if len(m.approvals) > old.approvals {
				for _, a := range m.approvals[old.approvals:] {
					add(a.at, 1, "Merge Request Hook", func() any { return w.mrHook(base, m, "approved", nil) })
				}
			}
			switch {
			case m.state == "merged":
				add(m.mergedAt, 0, "Push Hook", func() any { return w.branchPush(base, m, true) })
				add(m.mergedAt, 0, "Push Hook", func() any { return w.mainPush(base, m) })
				add(m.mergedAt, 1, "Merge Request Hook", func() any { return w.mrHook(base, m, "merge", &old) })
			case m.state == "closed":
				add(m.closedAt, 1, "Merge Request Hook", func() any { return w.mrHook(base, m, "close", &old) })
			case !m.updatedAt.Equal(old.updatedAt):
				add(m.updatedAt, 1, "Merge Request Hook", func() any { return w.mrHook(base, m, "update", &old) })
			}
			mrNotes(m, old.notes)
		}
		for i, is := range p.issues {
			from := 0
			switch old, ok := s.issue[is]; {
			case i >= s.issues:
				add(is.createdAt, 1, "Issue Hook", func() any { return w.issueHook(base, is, "open", nil) })
			case !ok:
				continue
			case is.state == "closed":
				add(is.closedAt, 1, "Issue Hook", func() any { return w.issueHook(base, is, "close", &old) })
				from = old.notes
			case !is.updatedAt.Equal(old.updatedAt):
				add(is.updatedAt, 1, "Issue Hook", func() any { return w.issueHook(base, is, "update", &old) })
				from = old.notes
			default:
				continue
			}
			for _, n := range is.notes[from:] {
				if !n.system {
					add(n.createdAt, 3, "Note Hook", func() any { return w.noteHook(base, n) })
				}
			}
		}
		for _, n := range p.commitNotes[s.commitNotes:] {
			add(n.createdAt, 3, "Note Hook", func() any { return w.noteHook(base, n) })
		}
		for i, pl := range p.pipes {
			old, ok := s.pipe[pl]
			if i < s.pipes && (!ok || old.status == pl.status) {
				continue
			}
			for k, j := range pl.jobs() {
				if ok && k < len(old.jobs) && old.jobs[k] == j.status {
					continue
				}
				add(pl.updatedAt, 2, "Job Hook", func() any { return w.jobHook(base, pl, j) })
			}
			add(pl.updatedAt, 3, "Pipeline Hook", func() any { return w.pipelineHook(base, pl) })
		}
		for i, d := range p.deploys {
			if old, ok := s.deploy[d]; i < s.deploys && (!ok || old == d.status) {
				continue
			}
			add(d.updatedAt, 4, "Deployment Hook", func() any { return w.deploymentHook(base, d) })
		}
		for _, t := range p.gitTags[s.tags:] {
			add(t.createdAt, 0, "Tag Push Hook", func() any { return w.tagPush(base, p, t) })
		}
		for _, rl := range p.releases[s.releases:] {
			add(rl.createdAt, 5, "Release Hook", func() any { return w.releaseHook(base, p, rl) })
		}
	}
	slices.SortStableFunc(fs, func(a, b fired) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if a.pi != b.pi {
			return a.pi - b.pi
		}
		return a.rank - b.rank
	})
	out := make([]hook, 0, len(fs))
	type action struct {
		p  *project
		at time.Time
	}
	uuids := map[action]string{}
	for _, f := range fs {
		k := action{f.p, f.at}
		id, ok := uuids[k]
		if !ok {
			id = h.newEventUUID()
			uuids[k] = id
		}
		b, err := json.Marshal(f.body())
		if err != nil {
			panic(fmt.Sprintf("gitlabsim: encoding %s: %v", f.event, err)) // our own types always encode
		}
		out = append(out, hook{event: f.event, eventUUID: id, body: b})
	}
	return out
}
