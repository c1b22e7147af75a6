package gitlabsim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

type issue struct {
	id, iid   int64
	p         *project
	title     string
	desc      string
	state     string // opened, closed
	incident  bool
	author    *user
	assignees []*user
	closedBy  *user
	createdAt time.Time
	updatedAt time.Time
	closedAt  time.Time
	labels    []string
	upvotes   int
	notes     []*note // created_at ascending
}

// note is a comment or system note on an MR, an issue or a commit of main.
type note struct {
	id        int64
	p         *project
	mr        *mergeRequest
	is        *issue
	commit    int // commit notes (mr and is nil): 1 + the commit's index in p.main
	body      string
	author    *user
	createdAt time.Time
	updatedAt time.Time
	system    bool
}

// event is an entry of GET /projects/:id/events.
type event struct {
	id     int64
	p      *project
	at     time.Time
	action string // action_name: opened, closed, accepted, commented on, pushed to
	author *user
	mr     *mergeRequest // opened/closed/accepted an MR; pushed to: the merge that moved main
	is     *issue
	n      *note
}

func cmpIssue(a, b *issue) int {
	if c := a.updatedAt.Compare(b.updatedAt); c != 0 {
		return c
	}
	return cmpInt(a.id, b.id)
}

var issueSubjects = []string{"Login fails with SSO", "Dashboard is slow", "Webhook retries pile up", "CSV export drops rows", "Typo in settings page", "Memory grows under load", "Search returns stale results", "Pipeline badge is wrong"}

// newIssue opens an issue at at. With d, the production deployment d went
// wrong and the issue is an incident about it; a few incidents have no
// deployment to blame.
func (w *world) newIssue(r *rand.Rand, p *project, at time.Time, d *deployment) *issue {
	is := &issue{
		id: w.nextIssueID, iid: int64(len(p.issues) + 1), p: p,
		title: issueSubjects[r.IntN(len(issueSubjects))], state: "opened",
		author: w.pickUser(r), createdAt: at, updatedAt: at, upvotes: r.IntN(4),
		labels: []string{}, assignees: []*user{},
	}
	w.nextIssueID++
	is.desc = fmt.Sprintf("### Summary\n\n%s in %s.\n\n### Steps to reproduce\n\n1. Open the page\n2. Wait", is.title, p.name)
	if d != nil || r.IntN(20) == 0 {
		is.incident = true
		is.title = "Incident: " + is.title
		is.labels = append(is.labels, "incident")
	}
	if d != nil {
		is.desc = fmt.Sprintf("### Summary\n\n%s in %s since the %s deployment of %s (deployment #%d).\n\n### Impact\n\nUsers see errors.",
			strings.TrimPrefix(is.title, "Incident: "), p.name, d.env.name, d.pl.sha[:8], d.iid)
	}
	if r.IntN(2) == 0 {
		is.labels = append(is.labels, allLabels[r.IntN(len(allLabels))])
	}
	slices.Sort(is.labels)
	is.labels = slices.Compact(is.labels)
	if r.IntN(3) > 0 {
		is.assignees = []*user{w.pickUser(r)}
	}
	return is
}

// historyIssue closes most issues some time after they were opened, with
// comments in between; every note is on or before the issue's updated_at.
// Incidents are closed sooner (when the service is restored), but a few
// stay open.
func (w *world) historyIssue(r *rand.Rand, is *issue, now time.Time, notes []*note) []*note {
	end := ms(is.createdAt.Add(time.Duration(10+r.IntN(60*24*10)) * time.Minute))
	closes := r.IntN(10) < 6
	if is.incident {
		end = ms(is.createdAt.Add(time.Duration(15+r.IntN(60*30)) * time.Minute))
		closes = r.IntN(20) < 17
	}
	if closes && end.Before(now) {
		is.state, is.closedAt, is.closedBy = "closed", end, w.pickUser(r)
		is.updatedAt = end
	} else {
		is.updatedAt = earliest(ms(is.createdAt.Add(time.Duration(r.IntN(3600000))*time.Millisecond)), now)
	}
	for range r.IntN(7) {
		at := between(r, is.createdAt, is.updatedAt)
		is.notes = append(is.notes, &note{p: is.p, is: is, body: comments[r.IntN(len(comments))], author: w.pickUser(r), createdAt: at, updatedAt: at})
	}
	if is.state == "closed" {
		is.notes = append(is.notes, &note{p: is.p, is: is, body: "closed", author: is.closedBy, createdAt: is.closedAt, updatedAt: is.closedAt, system: true})
	}
	slices.SortStableFunc(is.notes, func(a, b *note) int { return a.createdAt.Compare(b.createdAt) })
	return append(notes, is.notes...)
}

// wentWrong decides, once per finished production deployment, whether an
// incident follows it: half the failed ones, one in ten of the rest.
func (d *deployment) wentWrong(r *rand.Rand) bool {
	if d.triaged || d.env.tier != "production" || d.status != "success" && d.status != "failed" {
		return false
	}
	d.triaged = true
	if d.status == "failed" {
		return r.IntN(2) == 0
	}
	return r.IntN(10) == 0
}

// incidentDelay is how long after a deployment its incident is opened.
func incidentDelay(r *rand.Rand) time.Duration {
	return time.Duration(20+r.IntN(8*60)) * time.Minute
}

// historyEvents lists p's events of the generated history, unnumbered.
func (p *project) historyEvents(out []*event) []*event {
	for _, m := range p.mrs {
		out = append(out, &event{p: p, at: m.createdAt, action: "opened", author: m.author, mr: m})
		switch m.state {
		case "merged":
			out = append(out, &event{p: p, at: m.mergedAt, action: "accepted", author: m.mergedBy, mr: m},
				&event{p: p, at: m.mergedAt, action: "pushed to", author: m.mergedBy, mr: m})
		case "closed":
			out = append(out, &event{p: p, at: m.closedAt, action: "closed", author: m.closedBy, mr: m})
		}
		for _, n := range m.notes {
			if !n.system {
				out = append(out, &event{p: p, at: n.createdAt, action: "commented on", author: n.author, n: n})
			}
		}
	}
	for _, is := range p.issues {
		out = append(out, &event{p: p, at: is.createdAt, action: "opened", author: is.author, is: is})
		if is.state == "closed" {
			out = append(out, &event{p: p, at: is.closedAt, action: "closed", author: is.closedBy, is: is})
		}
		for _, n := range is.notes {
			if !n.system {
				out = append(out, &event{p: p, at: n.createdAt, action: "commented on", author: n.author, n: n})
			}
		}
	}
	for _, n := range p.commitNotes {
		out = append(out, &event{p: p, at: n.createdAt, action: "commented on", author: n.author, n: n})
	}
	return out
}

// addEvent records an event of Advance; its time is the project's newest.
func (p *project) addEvent(w *world, e *event) {
	e.p = p
	e.id = w.nextEventID
	w.nextEventID++
	p.events = append(p.events, e)
	p.touch(e.at)
}

func (w *world) addIssueNote(is *issue, n *note) {
	n.id = w.nextNoteID
	w.nextNoteID++
	n.p, n.is = is.p, is
	is.notes = append(is.notes, n)
	if !n.system {
		is.p.addEvent(w, &event{at: n.createdAt, action: "commented on", author: n.author, n: n})
	}
}

// advanceIssues opens an issue now and then, comments on or closes an open
// one, and sometimes comments on main's head commit.
func (w *world) advanceIssues(r *rand.Rand, p *project, now time.Time) {
	var open []*issue
	for _, is := range p.issues {
		if is.state == "opened" {
			open = append(open, is)
		}
	}
	if len(open) > 0 && r.IntN(2) == 0 {
		is := open[r.IntN(len(open))]
		p.issuesByUpd = removeIssue(p.issuesByUpd, is)
		t := p.next(now)
		if r.IntN(2) == 0 {
			w.addIssueNote(is, &note{body: comments[r.IntN(len(comments))], author: w.pickUser(r), createdAt: t, updatedAt: t})
		} else {
			is.state, is.closedAt, is.closedBy = "closed", t, w.pickUser(r)
			w.addIssueNote(is, &note{body: "closed", author: is.closedBy, createdAt: t, updatedAt: t, system: true})
			p.addEvent(w, &event{at: t, action: "closed", author: is.closedBy, is: is})
		}
		is.updatedAt = t
		p.issuesByUpd = append(p.issuesByUpd, is)
	}
	// An incident after a production deployment that finished in an
	// earlier step.
	for _, d := range p.deploys[max(0, len(p.deploys)-5):] {
		if d.wentWrong(r) {
			w.openIssue(r, p, now, d)
		}
	}
	if r.IntN(2) == 0 {
		w.openIssue(r, p, now, nil)
	}
	if len(p.main) > 0 && r.IntN(4) == 0 {
		t := p.next(now)
		n := &note{p: p, commit: len(p.main), body: comments[r.IntN(len(comments))], author: w.pickUser(r), createdAt: t, updatedAt: t, id: w.nextNoteID}
		w.nextNoteID++
		p.commitNotes = append(p.commitNotes, n)
		p.addEvent(w, &event{at: t, action: "commented on", author: n.author, n: n})
	}
}

// openIssue opens an issue (an incident about d, if given) in Advance.
func (w *world) openIssue(r *rand.Rand, p *project, now time.Time, d *deployment) {
	t := p.next(now)
	is := w.newIssue(r, p, t, d)
	p.issues = append(p.issues, is)
	p.issuesByUpd = append(p.issuesByUpd, is)
	p.addEvent(w, &event{at: t, action: "opened", author: is.author, is: is})
}

func removeIssue(s []*issue, is *issue) []*issue {
	i, ok := slices.BinarySearchFunc(s, is, cmpIssue)
	if !ok {
		i = slices.Index(s, is)
	}
	if i < 0 {
		return s
	}
	return slices.Delete(s, i, i+1)
}
