// Package change holds labtrail's domain: the Event every way in produces,
// the kinds of GitLab objects it tracks, their stable ids and the rules for
// ordering states. It does no I/O and imports nothing of labtrail's.
package change

import (
	"fmt"
	"sort"
	"time"
)

// Kind names a kind of GitLab object labtrail tracks.
type Kind string

// The kinds, named as the API and the store name them.
const (
	KindMergeRequest Kind = "merge_request"
	KindPipeline     Kind = "pipeline"
	KindJob          Kind = "job"
	KindCommit       Kind = "commit"
	KindIssue        Kind = "issue"
	KindNote         Kind = "note"
	KindBranch       Kind = "branch"
	KindTag          Kind = "tag"
	KindRelease      Kind = "release"
	KindDeployment   Kind = "deployment"
	KindEnvironment  Kind = "environment"
	KindImage        Kind = "image"
)

// Kinds lists every kind in a fixed order.
var Kinds = []Kind{
	KindMergeRequest, KindPipeline, KindJob, KindCommit, KindIssue, KindNote,
	KindBranch, KindTag, KindRelease, KindDeployment, KindEnvironment, KindImage,
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if v == k {
			return true
		}
	}
	return false
}

// ParseKind returns the kind named s or an error naming the valid ones.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if !k.Valid() {
		return "", fmt.Errorf("unknown kind %q (one of %v)", s, Kinds)
	}
	return k, nil
}

// Source says which way an event came in.
type Source string

// The ways in: GitLab's two, and a deployment reported to labtrail's own
// API (POST /api/v1/deployments) by a CI job or a deploy tool.
const (
	SourcePoll    Source = "poll"
	SourceWebhook Source = "webhook"
	SourceAPI     Source = "api"
)

// Transition is one state an object passed through, and when.
type Transition struct {
	State string    `json:"state"`
	At    time.Time `json:"at"`
}

// Event is one GitLab object as labtrail last saw it. Both ways in (webhook
// and poll) produce it; the store keeps the newest per ID.
type Event struct {
	ID          string    `json:"id"`
	Kind        Kind      `json:"kind"`
	ProjectID   int64     `json:"project_id"`
	ProjectPath string    `json:"project_path"`
	Title       string    `json:"title"`
	State       string    `json:"state"`
	Author      string    `json:"author"`
	WebURL      string    `json:"web_url"`
	Ref         string    `json:"ref,omitempty"`
	SHA         string    `json:"sha,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// OccurredAt is when the object's latest state began (merged_at for a
	// merged MR, finished_at for a finished pipeline); timelines and the
	// since/until filters use it.
	OccurredAt time.Time `json:"occurred_at"`
	Source     Source    `json:"source"`
	// ObservedAt is when labtrail saw this version: for a poll, the time
	// just before the request that read it was sent; for a webhook, when
	// the delivery was received. The upsert rule uses it to let what the
	// poller read from GitLab overrule a webhook it saw earlier, whatever
	// times the webhook carries (docs/architecture.md). Zero: unknown, as
	// for rows stored before it existed, which count as observed at 0.
	ObservedAt time.Time      `json:"-"`
	Attrs      map[string]any `json:"attributes,omitempty"`
	// Transitions are the states this payload shows the object went
	// through, with their times as GitLab reports them. The store appends
	// the new ones to the object's timeline.
	Transitions []Transition `json:"-"`
}

// Validate reports what makes e unfit to store.
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("event without id")
	case !e.Kind.Valid():
		return fmt.Errorf("event %s: unknown kind %q", e.ID, e.Kind)
	case e.UpdatedAt.IsZero():
		return fmt.Errorf("event %s: no updated_at", e.ID)
	case e.Source != SourcePoll && e.Source != SourceWebhook && e.Source != SourceAPI:
		return fmt.Errorf("event %s: unknown source %q", e.ID, e.Source)
	}
	return nil
}

// SortedTransitions returns e's transitions oldest first, dropping those
// without a time and consecutive repeats of one state.
func (e Event) SortedTransitions() []Transition {
	ts := make([]Transition, 0, len(e.Transitions))
	for _, t := range e.Transitions {
		if t.State != "" && !t.At.IsZero() {
			ts = append(ts, Transition{State: t.State, At: t.At.UTC()})
		}
	}
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].At.Before(ts[j].At) })
	out := ts[:0]
	for i, t := range ts {
		if i > 0 && out[len(out)-1].State == t.State {
			continue
		}
		out = append(out, t)
	}
	return out
}

// TimelineEntry is a stored transition of one object.
type TimelineEntry struct {
	EventID string    `json:"event_id"`
	State   string    `json:"state"`
	At      time.Time `json:"at"`
	Source  Source    `json:"source"`
}
