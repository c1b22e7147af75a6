package gitlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// Errors of ParseWebhook. Both are wrapped with the reason; test with
// errors.Is.
var (
	// ErrMalformed: the body is not a JSON object, or it lacks what its
	// event type needs (a project, an id, a timestamp).
	ErrMalformed = errors.New("malformed GitLab webhook payload")
	// ErrUnknownEvent: the X-Gitlab-Event header names no event type this
	// parser knows. The caller still stores the delivery raw.
	ErrUnknownEvent = errors.New("unknown GitLab webhook event type")
)

// Webhook is one parsed delivery.
type Webhook struct {
	EventType   string // X-Gitlab-Event
	ObjectKind  string // payload object_kind, else event_name
	ProjectID   int64  // 0 for group-level events without a project
	ProjectPath string
	// Events are what the delivery says changed, with the poller's ids;
	// empty for types labtrail stores raw only.
	Events []change.Event
	// NeedsDetails lists ids whose payload lacks what the poller fetches
	// (an MR's approvals and diffs, a failed pipeline's jobs, a
	// deployment's iid and environment, a branch's commits beyond the 20
	// a push carries, ...), so the caller can schedule a targeted fetch.
	// It may name an id that has no event in Events: the payload did not
	// even have its updated_at (a branch pushed without new commits).
	NeedsDetails []string
}

// webhookNow dates what a payload reports without a time of its own: the
// deletion of a branch, tag or release. A variable for tests.
var webhookNow = time.Now

// hookParser turns one decoded delivery into events.
type hookParser func(h *hookCtx) error

// payload is a delivery's body decoded for its event type.
type payload interface {
	// check fails when the payload lacks what its event cannot do
	// without (an id, a ref, a time); it runs once the project is known.
	check() error
}

// objectPayload is a payload whose object names its own project (merge
// requests, issues, notes): GitLab sends some of them without a project
// object.
type objectPayload interface {
	payload
	// object fails when the payload has no object, else returns the
	// object's project id.
	object() (int64, error)
}

// parser makes the parser of one event type from build, which turns its
// payload into events, and the opening every type shares: decode the
// body, settle the project (the payload's, else its object's) and check
// what the event cannot do without.
func parser[T any, P interface {
	*T
	payload
}](build func(h *hookCtx, v P) error) hookParser {
	return func(h *hookCtx) error {
		v := P(new(T))
		obj, named := any(v).(objectPayload)
		if !named {
			if err := h.requireProject(); err != nil {
				return err
			}
		}
		if err := h.decode(v); err != nil {
			return err
		}
		if named {
			pid, err := obj.object()
			if err != nil {
				return err
			}
			if h.p.ID == 0 {
				h.p.ID = pid
			}
			if err := h.requireProject(); err != nil {
				return err
			}
		}
		if err := v.check(); err != nil {
			return err
		}
		if err := build(h, v); err != nil {
			return err
		}
		return h.checkHook()
	}
}

// webhookTypes maps each X-Gitlab-Event value to the object_kind values
// GitLab sends with it and its parser; a nil parser means "store raw
// only".
var webhookTypes = map[string]struct {
	kinds []string
	parse hookParser
}{
	"Push Hook":                  {[]string{"push"}, parser(parsePush)},
	"Tag Push Hook":              {[]string{"tag_push"}, parser(parseTagPush)},
	"Merge Request Hook":         {[]string{"merge_request"}, parser(parseMergeRequest)},
	"Pipeline Hook":              {[]string{"pipeline"}, parser(parsePipeline)},
	"Job Hook":                   {[]string{"build"}, parser(parseJob)},
	"Issue Hook":                 {[]string{"issue", "work_item"}, parser(parseIssue)},
	"Confidential Issue Hook":    {[]string{"issue", "work_item"}, parser(parseIssue)},
	"Note Hook":                  {[]string{"note"}, parser(parseNote)},
	"Confidential Note Hook":     {[]string{"note"}, parser(parseNote)},
	"Release Hook":               {[]string{"release"}, parser(parseRelease)},
	"Deployment Hook":            {[]string{"deployment"}, parser(parseDeployment)},
	"Wiki Page Hook":             {nil, nil},
	"Milestone Hook":             {nil, nil},
	"Emoji Hook":                 {nil, nil},
	"Feature Flag Hook":          {nil, nil},
	"Member Hook":                {nil, nil},
	"Subgroup Hook":              {nil, nil},
	"Project Hook":               {nil, nil},
	"Resource Access Token Hook": {nil, nil},
	"Vulnerability Hook":         {nil, nil},
}

// KnownWebhookEvent reports whether event (an X-Gitlab-Event value,
// spelled as GitLab sends it) is a type ParseWebhook knows, converted or
// kept raw. A caller naming deliveries by type in a bounded set (metric
// labels) folds the others into one name.
func KnownWebhookEvent(event string) bool {
	_, ok := webhookTypes[strings.TrimSpace(event)]
	return ok
}

// hookProject is the project object every project-level payload carries.
type hookProject struct {
	ID                int64  `json:"id"`
	PathWithNamespace string `json:"path_with_namespace"`
	WebURL            string `json:"web_url"`
	DefaultBranch     string `json:"default_branch"`
}

type hookUser struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Username string `json:"username"`
}

func (u *hookUser) username() string {
	if u == nil {
		return ""
	}
	return u.Username
}

func hookUsernames(us []*hookUser) []string {
	out := []string{}
	for _, u := range us {
		if u != nil && u.Username != "" {
			out = append(out, u.Username)
		}
	}
	return out
}

type hookLabel struct {
	Title string `json:"title"`
}

func labelTitles(ls []hookLabel) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.Title)
	}
	return out
}

// checkItem fails for a merge request or issue that lacks what its event
// needs.
func checkItem(what string, iid int64, updated time.Time) error {
	if iid == 0 {
		return malformed("%s without iid", what)
	}
	if updated.IsZero() {
		return malformed("%s without updated_at", what)
	}
	return nil
}

// itemLabels are a merge request's or issue's labels: its own, else those
// of the payload (older GitLab sends them beside the object).
func itemLabels(own, payload []hookLabel) []string {
	if own == nil {
		own = payload
	}
	return labelTitles(own)
}

// actingAuthor is a merge request's or issue's author as its payload
// names it: `user` is whoever acted, so only when that is the author
// (object_attributes.author_id == user.id).
func actingAuthor(user *hookUser, authorID int64) string {
	if user != nil && user.ID != 0 && user.ID == authorID {
		return user.Username
	}
	return ""
}

// envelope holds the fields that say what a payload is about.
type envelope struct {
	ObjectKind        string       `json:"object_kind"`
	EventName         string       `json:"event_name"`
	ProjectID         int64        `json:"project_id"`
	PathWithNamespace string       `json:"path_with_namespace"`
	Project           *hookProject `json:"project"`
}

// hookCtx is one delivery being parsed.
type hookCtx struct {
	body []byte
	p    Project // ID 0 when the payload names no project
	out  *Webhook
}

func (h *hookCtx) decode(v any) error {
	if err := json.Unmarshal(h.body, v); err != nil {
		return malformed("%s: %v", h.out.EventType, err)
	}
	return nil
}

// requireProject fails for a project event whose payload names no project.
func (h *hookCtx) requireProject() error {
	if h.p.ID == 0 {
		return malformed("%s without a project id", h.out.EventType)
	}
	return nil
}

func (h *hookCtx) emit(ev change.Event) {
	ev.Source = change.SourceWebhook
	if ev.ProjectPath == "" {
		ev.ProjectPath = h.p.Path
	}
	h.out.Events = append(h.out.Events, ev)
}

func (h *hookCtx) needs(id string) {
	for _, v := range h.out.NeedsDetails {
		if v == id {
			return
		}
	}
	h.out.NeedsDetails = append(h.out.NeedsDetails, id)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseWebhook converts one delivery. eventType is the X-Gitlab-Event
// header value. Its events carry the poller's ids (docs/kinds.md) and,
// where the payload has it, the same updated_at; Source is
// change.SourceWebhook.
func ParseWebhook(eventType string, body []byte) (Webhook, error) {
	eventType = strings.TrimSpace(eventType)
	out := Webhook{EventType: eventType}
	typ, ok := webhookTypes[eventType]
	if !ok {
		return out, fmt.Errorf("%w: %q", ErrUnknownEvent, eventType)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return out, malformed("%s: body is not a JSON object", eventType)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) || typ.parse != nil {
			return out, malformed("%s: %v", eventType, err)
		}
		// A raw-only type is kept whatever shape its fields have.
	}
	out.ObjectKind = firstNonEmpty(env.ObjectKind, env.EventName)
	if env.Project != nil {
		out.ProjectID = env.Project.ID
		out.ProjectPath = env.Project.PathWithNamespace
	}
	// The top-level project_id wins: job payloads have been seen whose
	// project object names another project than project_id.
	if env.ProjectID != 0 {
		out.ProjectID = env.ProjectID
	}
	if out.ProjectPath == "" {
		out.ProjectPath = env.PathWithNamespace
	}
	if typ.parse == nil {
		return out, nil
	}
	if out.ObjectKind != "" && !contains(typ.kinds, out.ObjectKind) {
		return out, malformed("%s with object_kind %q", eventType, out.ObjectKind)
	}
	h := &hookCtx{body: body, out: &out, p: Project{ID: out.ProjectID, Path: out.ProjectPath}}
	if env.Project != nil {
		h.p.WebURL = strings.TrimSuffix(env.Project.WebURL, "/")
		h.p.DefaultBranch = env.Project.DefaultBranch
	}
	if err := typ.parse(h); err != nil {
		out.Events, out.NeedsDetails = nil, nil
		return out, err
	}
	// A parser may have found the project id elsewhere in the payload.
	out.ProjectID = h.p.ID
	return out, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// hookTime decodes any time GitLab writes into a webhook; null and "" are
// the zero time.
type hookTime struct{ time.Time }

func (t *hookTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// timeLayouts are the forms GitLab's webhooks write times in: RFC 3339
// (newer payloads, the *_iso fields), Ruby's Time#to_s in UTC
// ("2016-08-12 15:26:29 UTC", most older fields) and with an offset
// (deployment status_changed_at: "2021-04-28 21:50:00 +0200"). A
// fractional second is accepted in each.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999 -07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
}

// ParseTime parses every time format GitLab webhooks use and returns it
// in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutSuffix(s, " UTC"); ok {
		t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", rest, time.UTC)
		if err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("unrecognised GitLab time %q", s)
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised GitLab time %q", s)
}
