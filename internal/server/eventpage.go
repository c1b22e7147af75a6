package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// The event page, GET /events/{id}: one event's attributes shown as a
// person reads them, its timeline of states, and the events it is related
// to. Every related list is one bounded, indexed read (or a handful of
// reads by id, at most relatedMax), never a scan of the events.

// relatedMax is how many events a related list shows; the rest are
// counted.
const relatedMax = 25

// filesMax is how many of a merge request's files the page lists.
const filesMax = 100

// jobsMax is how many jobs of a pipeline the page lists.
const jobsMax = 200

var eventTmpl = pageTemplate("event")

// field is one attribute as the page shows it: text (in code when Code),
// a time, a list, or text linking to Href.
type field struct {
	Label string
	Text  string
	Code  bool
	Time  time.Time
	Href  string
	Items []string
}

// related is a list of events related to the page's.
type related struct {
	ID, Title string
	// Rule says how they were found.
	Rule   string
	Events []change.Event
	// More counts those found but not shown.
	More int
	// Empty says what none means; Off says why the list is not there.
	Empty, Off string
	// Link and LinkText point at the whole list elsewhere.
	Link, LinkText string
}

type file struct {
	Path                 string
	Additions, Deletions int
}

type approvalRow struct {
	User string
	At   time.Time
}

type jobRow struct {
	Name, Stage, Status, Reason, URL, Href string
	Duration                               any
	AllowFailure                           bool
}

type eventData struct {
	Event    change.Event
	Timeline []change.TimelineEntry
	Fields   []field
	// Approvals, Files and FailedJobs are the lists of an MR and a
	// pipeline.
	Approvals  []approvalRow
	Files      []file
	MoreFiles  int
	FilesTotal int
	FailedJobs []jobRow
	// Jobs are a pipeline's jobs from the store, failed first.
	Jobs     []jobRow
	JobsNote string
	Related  []related
	// Raw is the attributes as JSON.
	Raw string
	// Project is the path of the event's project as labtrail syncs it now
	// (it may have been renamed since), for a link to its timeline; "" if
	// labtrail no longer syncs it.
	Project string
}

// eventPage is GET /events/{id}.
func (s *Server) eventPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if q := r.URL.Query(); len(q) > 0 {
		s.failPage(w, r, badRequest("unknown parameter %q: the event page takes none", slices.Sorted(maps.Keys(q))[0]))
		return
	}
	id := r.PathValue("id")
	if _, err := change.ParseID(id); err != nil {
		s.failPage(w, r, &apiError{http.StatusNotFound, fmt.Sprintf("no event with id %q: ids name a kind, a project id and the object, such as mr-12-34 or pipeline-12-5678 (%v)", id, err)})
		return
	}
	ev, tl, err := s.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		err = &apiError{http.StatusNotFound, fmt.Sprintf("no event with id %q: labtrail has not stored it (yet); the timeline lists what it holds", id)}
	}
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	ev.SafeURLs("")
	d := eventData{Event: ev, Timeline: tl}
	ps, err := s.store.Projects(ctx)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	if i := slices.IndexFunc(ps, func(p store.Project) bool { return p.ID == ev.ProjectID }); i >= 0 {
		d.Project = ps[i].Path
	}
	a := attrs(ev.Attrs)
	if raw, err := json.MarshalIndent(ev.Attrs, "", "  "); err == nil && len(ev.Attrs) > 0 {
		d.Raw = string(raw)
	}
	switch ev.Kind {
	case change.KindMergeRequest:
		err = s.mergeRequestDetail(ctx, &d, a)
	case change.KindPipeline:
		err = s.pipelineDetail(ctx, &d, a)
	case change.KindJob:
		d.Fields = jobFields(ev, a)
	case change.KindDeployment:
		err = s.deploymentDetail(ctx, &d, a)
	case change.KindIssue:
		err = s.issueDetail(ctx, &d, a)
	case change.KindNote:
		d.Fields = noteFields(ev, a)
	default:
		d.Fields = otherFields(ev, a)
	}
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	s.render(w, r, "event", page{Title: cmp.Or(ev.Title, ev.ID), Data: &d})
}

// attrs reads an event's attributes as the store hands them back (JSON
// decoded: numbers as float64 or json.Number); a missing attribute, or one
// of another type, reads as nothing.
type attrs map[string]any

func (a attrs) str(k string) string {
	s, _ := a[k].(string)
	return s
}

func (a attrs) num(k string) (float64, bool) {
	switch v := a[k].(type) {
	case float64:
		return v, true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	}
	return 0, false
}

func (a attrs) int(k string) int64 {
	f, _ := a.num(k)
	return int64(f)
}

func (a attrs) time(k string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, a.str(k))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func (a attrs) strs(k string) []string {
	var out []string
	switch v := a[k].(type) {
	case []string:
		out = v
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func (a attrs) objs(k string) []attrs {
	var out []attrs
	switch v := a[k].(type) {
	case []any:
		for _, x := range v {
			if m, ok := x.(map[string]any); ok {
				out = append(out, attrs(m))
			}
		}
	case []map[string]any:
		for _, m := range v {
			out = append(out, attrs(m))
		}
	}
	return out
}

func (a attrs) obj(k string) attrs {
	m, _ := a[k].(map[string]any)
	return attrs(m)
}

// fields builds an event's field list, leaving out what it does not have.
type fields []field

func (f *fields) text(label, v string) {
	if v != "" {
		*f = append(*f, field{Label: label, Text: v})
	}
}

func (f *fields) code(label, v string) {
	if v != "" {
		*f = append(*f, field{Label: label, Text: v, Code: true})
	}
}

func (f *fields) at(label string, t time.Time) {
	if !t.IsZero() {
		*f = append(*f, field{Label: label, Time: t})
	}
}

func (f *fields) list(label string, v []string) {
	if len(v) > 0 {
		*f = append(*f, field{Label: label, Items: v})
	}
}

func (f *fields) link(label, text, href string) {
	if text != "" {
		*f = append(*f, field{Label: label, Text: text, Href: href})
	}
}

func (f *fields) seconds(label string, a attrs, k string) {
	if v, ok := a.num(k); ok {
		*f = append(*f, field{Label: label, Text: humanDuration(v)})
	}
}

func (f *fields) yes(label string, a attrs, k string) {
	if v, ok := a[k].(bool); ok {
		*f = append(*f, field{Label: label, Text: map[bool]string{true: "yes", false: "no"}[v]})
	}
}

func (f *fields) count(label string, a attrs, k string) {
	if v, ok := a.num(k); ok {
		*f = append(*f, field{Label: label, Text: number(v)})
	}
}

// idOf is the last part of an event id: the object's own id or iid.
func idOf(id string) int64 {
	n, _ := strconv.ParseInt(id[strings.LastIndex(id, "-")+1:], 10, 64)
	return n
}

func (s *Server) mergeRequestDetail(ctx context.Context, d *eventData, a attrs) error {
	ev := d.Event
	var f fields
	f.text("State", ev.State)
	f.yes("Draft", a, "draft")
	if src, dst := a.str("source_branch"), a.str("target_branch"); src != "" || dst != "" {
		f = append(f, field{Label: "Branches", Text: cmp.Or(src, "?") + " → " + cmp.Or(dst, "?"), Code: true})
	}
	f.link("Author", ev.Author, "/timeline?author="+url.QueryEscape(ev.Author))
	f.list("Assignees", a.strs("assignees"))
	f.list("Reviewers", a.strs("reviewers"))
	f.yes("Approved", a, "approved")
	f.list("Labels", a.strs("labels"))
	f.count("Commits", a, "commit_count")
	f.at("First commit", a.time("first_commit_at"))
	if _, ok := a.num("additions"); ok {
		f.text("Lines", fmt.Sprintf("+%s −%s", number(a.int("additions")), number(a.int("deletions"))))
	}
	if files := a.objs("changed_files"); files != nil {
		f.text("Files changed", number(len(files)))
	}
	f.count("Comments", a, "user_notes_count")
	f.at("Opened", ev.CreatedAt)
	f.at("Merged", a.time("merged_at"))
	f.link("Merged by", a.str("merged_by"), "/timeline?author="+url.QueryEscape(a.str("merged_by")))
	f.at("Closed", a.time("closed_at"))
	f.text("Closed by", a.str("closed_by"))
	f.code("Head commit", ev.SHA)
	f.code("Merge commit", a.str("merge_commit_sha"))
	d.Fields = f
	for _, ap := range a.objs("approvals") {
		d.Approvals = append(d.Approvals, approvalRow{User: ap.str("user"), At: ap.time("approved_at")})
	}
	files := a.objs("changed_files")
	for _, fl := range files {
		d.Files = append(d.Files, file{Path: fl.str("path"), Additions: int(fl.int("additions")), Deletions: int(fl.int("deletions"))})
	}
	d.Files, d.MoreFiles = cut(d.Files, filesMax)
	d.FilesTotal = len(files)

	// Its pipelines: those of its branch, of GitLab's merge request refs,
	// or of its head commit, from its first commit (or a day before it was
	// opened) until an hour after it was merged or closed.
	iid := idOf(ev.ID)
	pipes := related{ID: "mr-pipelines", Title: "Pipelines",
		Rule:  "Pipelines of this project on the source branch, on refs/merge-requests/" + strconv.FormatInt(iid, 10) + "/…, or on the head commit, from its first commit (or a day before it was opened) until an hour after it was merged or closed; newest first.",
		Empty: "No pipeline of its branch or head commit is stored."}
	if rs, ok := s.related(store.ConnectionOf(ev.ID)); ok {
		refs := []string{fmt.Sprintf("refs/merge-requests/%d/head", iid), fmt.Sprintf("refs/merge-requests/%d/merge", iid)}
		if b := a.str("source_branch"); b != "" {
			refs = append(refs, b)
		}
		since := ev.CreatedAt.Add(-24 * time.Hour)
		if first := a.time("first_commit_at"); !first.IsZero() && first.Before(since) {
			since = first // a branch pushed long before its merge request was opened
		}
		since = clampTime(since)
		var until time.Time
		if end := cmp.Or(a.time("merged_at"), a.time("closed_at")); !end.IsZero() && ev.State != "opened" {
			until = clampTime(end.Add(time.Hour))
		}
		evs, err := rs.RefPipelines(ctx, ev.ProjectID, refs, ev.SHA, since, until, relatedMax+1)
		if err != nil {
			return err
		}
		for i := range evs {
			evs[i].SafeURLs("")
		}
		pipes.Events, pipes.More = cut(evs, relatedMax)
	} else {
		pipes.Off = "This store cannot look pipelines up by branch."
	}
	deps := related{ID: "mr-deployments", Title: "Shipped by",
		Rule:  "DORA's rule: in each production environment, the first successful deployment of this project that finished at or after the merge, if it deployed the target branch.",
		Empty: "No production deployment has shipped it yet."}
	switch merged := a.time("merged_at"); {
	case s.delivery == nil:
		deps.Off = "The delivery metrics are not set up on this server, so production deployments are not linked."
	case merged.IsZero():
		deps.Empty = "It is not merged, so no deployment has shipped it."
	default:
		ds, err := s.metricsOf(ctx, nil, store.ConnectionOf(ev.ID)).ShippedBy(ctx, ev.ProjectID, ev.ID, merged)
		if err != nil {
			return err
		}
		if deps.Events, deps.More, err = s.deploymentEvents(ctx, ds); err != nil {
			return err
		}
	}
	d.Related = append(d.Related, pipes, deps)
	return nil
}

func (s *Server) pipelineDetail(ctx context.Context, d *eventData, a attrs) error {
	ev := d.Event
	var f fields
	f.text("Status", cmp.Or(a.str("status"), ev.State))
	f.code("Ref", ev.Ref)
	f.code("Commit", ev.SHA)
	f.text("Source", a.str("source"))
	f.link("Triggered by", cmp.Or(ev.Author, a.str("user")), "/timeline?author="+url.QueryEscape(cmp.Or(ev.Author, a.str("user"))))
	f.at("Created", ev.CreatedAt)
	f.at("Started", a.time("started_at"))
	f.at("Finished", a.time("finished_at"))
	f.seconds("Duration", a, "duration")
	f.seconds("Queued", a, "queued_duration")
	d.Fields = f
	for _, j := range a.objs("failed_jobs") {
		d.FailedJobs = append(d.FailedJobs, jobRowOf(j, ""))
	}
	pid := idOf(ev.ID)
	if rs, ok := s.related(store.ConnectionOf(ev.ID)); ok {
		jobs, err := rs.PipelineJobs(ctx, ev.ProjectID, pid, ev.SHA, jobsMax+1)
		if err != nil {
			return err
		}
		jobs, more := cut(jobs, jobsMax)
		for i := range jobs {
			jobs[i].SafeURLs("")
		}
		slices.SortStableFunc(jobs, func(x, y change.Event) int {
			return cmp.Or(boolOrder(x.State != "failed", y.State != "failed"), x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(x.ID, y.ID))
		})
		for _, j := range jobs {
			d.Jobs = append(d.Jobs, jobRowOf(attrs(j.Attrs), j.ID))
		}
		if more > 0 {
			d.JobsNote = fmt.Sprintf("The first %d jobs are shown; it has more.", jobsMax)
		}
	} else {
		d.JobsNote = "This store cannot look a pipeline's jobs up."
	}
	// GitLab runs a merge request's pipelines on its own refs.
	mr := related{ID: "pipeline-mr", Title: "Merge request",
		Rule:  "The merge request whose refs/merge-requests/<iid>/… ref the pipeline ran on.",
		Empty: "It did not run on a merge request's ref."}
	var iid int64
	if _, err := fmt.Sscanf(ev.Ref, "refs/merge-requests/%d/", &iid); err == nil && iid > 0 {
		evs, _, err := s.eventsByID(ctx, []string{change.MergeRequestID(ev.ProjectID, iid)})
		if err != nil {
			return err
		}
		mr.Events = evs
		if len(evs) == 0 {
			mr.Empty = fmt.Sprintf("It ran for merge request !%d, which labtrail has not stored.", iid)
		}
	}
	d.Related = append(d.Related, mr)
	return nil
}

func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func jobRowOf(j attrs, id string) jobRow {
	row := jobRow{Name: j.str("name"), Stage: j.str("stage"), Status: j.str("status"), Reason: j.str("failure_reason"),
		URL: j.str("web_url"), AllowFailure: j["allow_failure"] == true}
	if v, ok := j.num("duration"); ok {
		row.Duration = v
	}
	if id != "" {
		row.Href = "/events/" + url.PathEscape(id)
	}
	return row
}

func jobFields(ev change.Event, a attrs) fields {
	var f fields
	f.text("Status", cmp.Or(a.str("status"), ev.State))
	f.text("Stage", a.str("stage"))
	f.text("Failure reason", a.str("failure_reason"))
	f.yes("Allowed to fail", a, "allow_failure")
	if p := a.int("pipeline_id"); p > 0 {
		f.link("Pipeline", "#"+strconv.FormatInt(p, 10), "/events/"+url.PathEscape(change.PipelineID(ev.ProjectID, p)))
	}
	f.code("Ref", ev.Ref)
	f.code("Commit", ev.SHA)
	f.link("User", ev.Author, "/timeline?author="+url.QueryEscape(ev.Author))
	f.at("Created", ev.CreatedAt)
	f.at("Started", a.time("started_at"))
	f.at("Finished", a.time("finished_at"))
	f.seconds("Duration", a, "duration")
	f.seconds("Queued", a, "queued_duration")
	return f
}

// environmentOf reads a deployment's environment: a name, or an object
// with one (as webhooks sent it).
func environmentOf(a attrs) string {
	if s := a.str("environment"); s != "" {
		return s
	}
	return a.obj("environment").str("name")
}

func (s *Server) deploymentDetail(ctx context.Context, d *eventData, a attrs) error {
	ev := d.Event
	var f fields
	f.text("Environment", environmentOf(a))
	f.text("Status", cmp.Or(a.str("status"), ev.State))
	f.code("Ref", ev.Ref)
	f.code("Commit", ev.SHA)
	f.link("Deployed by", ev.Author, "/timeline?author="+url.QueryEscape(ev.Author))
	f.at("Created", ev.CreatedAt)
	f.at("Finished", a.time("finished_at"))
	job := a.obj("deployable")
	if name := job.str("name"); name != "" {
		f.link("Job", name, job.str("web_url"))
	}
	if p := job.int("pipeline_id"); p > 0 {
		f.link("Pipeline", "#"+strconv.FormatInt(p, 10), "/events/"+url.PathEscape(change.PipelineID(ev.ProjectID, p)))
	}
	shipped := related{ID: "deployment-changes", Title: "Merge requests it shipped",
		Rule:  "DORA's rule: the merge requests of this project merged into the deployed ref after the environment's previous successful deployment finished and at or before this one finished.",
		Empty: "It shipped no merge request: nothing was merged into its ref since the environment's previous deployment."}
	incidents := related{ID: "deployment-incidents", Title: "Incidents after it",
		Rule:  "DORA's change-failure rule: incidents of this project opened after it finished and at or before the project's next production deployment finished. Any makes it a failed deployment.",
		Empty: "No incident followed it."}
	finished := a.time("finished_at")
	switch {
	case s.delivery == nil:
		shipped.Off = "The delivery metrics are not set up on this server, so deployments are not linked."
		incidents.Off = shipped.Off
	case finished.IsZero() || cmp.Or(a.str("status"), ev.State) != "success":
		shipped.Off = "Only a successful, finished deployment ships changes."
		incidents.Off = shipped.Off
	default:
		l, err := s.metricsOf(ctx, nil, store.ConnectionOf(ev.ID)).LinksOf(ctx, ev.ProjectID, ev.ID, finished)
		if err != nil {
			return err
		}
		counted := "no: its environment is not production"
		if l.Counted {
			counted = "yes: a production deployment"
		}
		f.text("Counted by DORA", counted)
		if shipped.Events, shipped.More, err = s.eventsByID(ctx, l.Changes); err != nil {
			return err
		}
		if !l.Counted {
			incidents.Off = "DORA links incidents to production deployments only."
		} else if incidents.Events, incidents.More, err = s.eventsByID(ctx, l.Incidents); err != nil {
			return err
		}
	}
	if ls, ok := s.linked(); ok {
		// A deployment reported to labtrail's API and GitLab's own of the
		// same job (or sha, within minutes) are one deployment, counted
		// once, as GitLab's.
		same := related{ID: "deployment-linked", Title: "The same deployment, from its other source",
			Rule: "A deployment reported to labtrail's API (source api) is linked to GitLab's deployment of the same project and environment with the same job, " +
				"or with the same sha within " + store.LinkWindow.String() + "; the metrics count the two once, as GitLab's.",
			Empty: "Only one source knows it."}
		linked, err := ls.LinkedDeployments(ctx, ev.ID)
		if err != nil {
			return err
		}
		same.Events, same.More = cut(linked, relatedMax)
		var sources []string
		for _, src := range linkedSources(ev, linked) {
			sources = append(sources, string(src))
		}
		f.text("Sources", strings.Join(sources, ", "))
		if ev.Source == change.SourceAPI && len(linked) > 0 {
			for i := range f {
				if f[i].Label == "Counted by DORA" {
					f[i].Text = "once, as GitLab's deployment " + linked[0].ID
				}
			}
			shipped.Events, incidents.Events = nil, nil
			shipped.Off = "It is counted as GitLab's deployment " + linked[0].ID + ", whose page lists what it shipped."
			incidents.Off = shipped.Off
		}
		d.Related = append(d.Related, same)
	}
	d.Fields = f
	d.Related = append(d.Related, shipped, incidents)
	return nil
}

func (s *Server) issueDetail(ctx context.Context, d *eventData, a attrs) error {
	ev := d.Event
	var f fields
	f.text("State", ev.State)
	f.text("Type", a.str("issue_type"))
	f.list("Labels", a.strs("labels"))
	f.link("Author", ev.Author, "/timeline?author="+url.QueryEscape(ev.Author))
	f.list("Assignees", a.strs("assignees"))
	f.yes("Confidential", a, "confidential")
	f.count("Comments", a, "user_notes_count")
	f.at("Opened", ev.CreatedAt)
	f.at("Closed", a.time("closed_at"))
	f.text("Closed by", a.str("closed_by"))
	if s.delivery == nil || !s.delivery.IsIncident(a.str("issue_type"), a.strs("labels")) {
		d.Fields = f
		return nil
	}
	f.text("Incident", "yes: DORA counts it (its type or a label)")
	if closed := a.time("closed_at"); !closed.IsZero() && !ev.CreatedAt.IsZero() {
		f.text("Time to restore", humanDuration(closed.Sub(ev.CreatedAt).Seconds()))
	}
	d.Fields = f
	after := related{ID: "incident-deployment", Title: "The deployment it followed",
		Rule:  "DORA's change-failure rule, reversed: the project's latest successful production deployment that finished before it was opened, which it counts as failed.",
		Empty: "No production deployment of this project finished before it was opened."}
	ds, err := s.metricsOf(ctx, nil, store.ConnectionOf(ev.ID)).FollowedBy(ctx, ev.ProjectID, ev.ID, ev.CreatedAt)
	if err != nil {
		return err
	}
	if after.Events, after.More, err = s.deploymentEvents(ctx, ds); err != nil {
		return err
	}
	d.Related = append(d.Related, after)
	before := related{ID: "incident-changes", Title: "Changes before it",
		Rule: fmt.Sprintf("What changed what runs in this project in the %g hours before it was opened: deployments, merged merge requests, finished pipelines, releases, tags, images and environments; newest first.",
			DefaultChangeWindow.Hours()),
		Empty:    "Nothing changed in this project in that window.",
		Link:     "/api/v1/changes/before?incident=" + url.QueryEscape(ev.ID),
		LinkText: "These changes as JSON (window= looks further back, up to 30 days)"}
	_, flt, err := s.changeQuery(ctx, url.Values{"incident": {ev.ID}})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			// Opened outside the range the store holds: nothing to list.
			before.Off = ae.msg
			d.Related = append(d.Related, before)
			return nil
		}
		return err
	}
	evs, truncated, err := s.listChanges(ctx, flt, relatedMax)
	if err != nil {
		return err
	}
	before.Events = evs
	if truncated {
		before.More = -1
	}
	d.Related = append(d.Related, before)
	return nil
}

func noteFields(ev change.Event, a attrs) fields {
	var f fields
	f.link("Author", ev.Author, "/timeline?author="+url.QueryEscape(ev.Author))
	iid := a.int("noteable_iid")
	switch t := a.str("noteable_type"); {
	case t == "MergeRequest" && iid > 0:
		f.link("On", "merge request !"+strconv.FormatInt(iid, 10), "/events/"+url.PathEscape(change.MergeRequestID(ev.ProjectID, iid)))
	case t == "Issue" && iid > 0:
		f.link("On", "issue #"+strconv.FormatInt(iid, 10), "/events/"+url.PathEscape(change.IssueID(ev.ProjectID, iid)))
	default:
		f.text("On", t)
	}
	f.code("Commit", a.str("commit_id"))
	f.yes("System note", a, "system")
	f.yes("Internal", a, "internal")
	f.yes("Resolved", a, "resolved")
	f.at("Written", ev.CreatedAt)
	f.text("Text", a.str("body"))
	return f
}

// otherFields shows the kinds without a page of their own: what every
// event has, and their attributes' plain values.
func otherFields(ev change.Event, a attrs) fields {
	var f fields
	f.text("State", ev.State)
	f.code("Ref", ev.Ref)
	f.code("Commit", ev.SHA)
	f.link("Author", ev.Author, "/timeline?author="+url.QueryEscape(ev.Author))
	f.at("Created", ev.CreatedAt)
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		label := strings.ToUpper(k[:1]) + strings.ReplaceAll(k[1:], "_", " ")
		switch v := a[k].(type) {
		case string:
			if t := a.time(k); !t.IsZero() {
				f.at(label, t)
			} else if strings.HasSuffix(k, "url") {
				f.link(label, v, v)
			} else {
				f.text(label, v)
			}
		case bool:
			f.yes(label, a, k)
		case float64, json.Number:
			f.count(label, a, k)
		}
	}
	return f
}

// eventsByID reads up to relatedMax of ids, in their order, skipping any
// not stored; more counts the rest.
func (s *Server) eventsByID(ctx context.Context, ids []string) (evs []change.Event, more int, err error) {
	ids, more = cut(ids, relatedMax)
	for _, id := range ids {
		e, _, err := s.store.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		e.SafeURLs("")
		evs = append(evs, e)
	}
	return evs, more, nil
}

// deploymentEvents are the events of deployments the metrics linked.
func (s *Server) deploymentEvents(ctx context.Context, ds []store.DeploymentFact) ([]change.Event, int, error) {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return s.eventsByID(ctx, ids)
}

// cut keeps the first n of xs and counts the rest.
func cut[T any](xs []T, n int) ([]T, int) {
	if len(xs) > n {
		return xs[:n], len(xs) - n
	}
	return xs, 0
}

// clampTime keeps t inside the range every store holds.
func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(store.MinTime):
		return store.MinTime
	case t.After(store.MaxTime):
		return store.MaxTime
	}
	return t
}
