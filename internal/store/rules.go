package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// The rules of Upsert, written once for every backend: a backend reads the
// stored version of an event, asks Decide what to do, and writes what it
// says in its own dialect.

// StoredEvent is an event's stored version as the upsert rule reads it:
// the event as stored (its Source and ObservedAt included, Attrs unused),
// its attributes' JSON as stored (nil for none) and its content hash.
type StoredEvent struct {
	change.Event
	AttrsJSON []byte
	Hash      []byte
}

// Decision is what Upsert does with one event.
type Decision struct {
	// Result has exactly one of its counts at 1.
	Result UpsertResult
	// Write says the event's row is to be written: Event with Attrs and
	// Hash. A write can come with Result.Unchanged: a poll confirming what
	// a webhook stored changes no content, only the row's Source and
	// ObservedAt.
	Write bool
	// Event is the row to write: the prevailing version, with what it
	// leaves empty filled in from the other one (see Decide).
	Event change.Event
	Attrs []byte // nil for none
	Hash  []byte
	// Transitions are what the incoming event says about its timeline,
	// oldest first; Timeline says which of them the timeline gains, From
	// which way they came (the timeline entries' source).
	Transitions []change.Transition
	From        change.Source
	// Authority is the poll's version that has the last word on this
	// object's timeline, nil for none: the incoming poll version that
	// prevailed, or the stored poll version a webhook did not prevail
	// over. Timeline drops the webhook entries it contradicts.
	Authority *change.Event
}

// How an incoming version fares against the stored one.
type outcome int

const (
	loses     outcome = iota // the stored version stays
	fills                    // the stored version stays; the incoming one fills what it leaves empty
	prevails                 // the incoming version replaces the stored one, which fills what it leaves empty
	overrules                // a poll's: it replaces the stored version whatever its updated_at
)

// judge is the upsert rule (docs/architecture.md, "One history"). What a
// poll read from GitLab is GitLab's truth at the moment it was read, so a
// poll version observed at or after the stored version was observed
// overrules it, whatever updated_at either carries: a webhook can be ahead
// of the poller only by being newer in real time. A webhook version seen
// before the stored poll version was read tells nothing the poll did not
// already know. Otherwise the newer updated_at prevails; at equal
// updated_at a poll's version prevails over a webhook's (it is GitLab's
// reading of that version), and between two of one source the later
// observation. An unknown observation time (zero) of the incoming version
// leaves only the updated_at rule; of the stored one counts as the start
// of time.
func judge(e change.Event, old *StoredEvent) outcome {
	known := !e.ObservedAt.IsZero()
	if known && e.Source == change.SourcePoll && !e.ObservedAt.Before(old.ObservedAt) {
		return overrules
	}
	if known && e.Source == change.SourceWebhook && old.Source == change.SourcePoll && !e.ObservedAt.After(old.ObservedAt) {
		if e.UpdatedAt.Equal(old.UpdatedAt) {
			return fills
		}
		return loses
	}
	switch c := e.UpdatedAt.Compare(old.UpdatedAt); {
	case c < 0:
		return loses
	case c > 0:
		return prevails
	}
	switch {
	case e.Source != old.Source && e.Source == change.SourcePoll:
		return prevails
	case e.Source != old.Source:
		return fills
	case e.ObservedAt.Before(old.ObservedAt):
		return fills
	}
	return prevails
}

// Decide applies the upsert rule to e against its stored version, nil when
// the id is new. e's times must already be as the backend stores them
// (truncated to its precision), so that what is compared and hashed is what
// a later read returns.
//
// Whichever version prevails (judge), the top-level fields it leaves empty
// (title, author, web_url, ref, sha, project path, state, created_at, and
// occurred_at while the state is the same) keep the other version's values. A webhook never blanks an
// attribute: the keys it does not carry (approvals, diff stats, ...) keep
// their stored values. A poll's attributes are GitLab's whole reading of
// the object, so a prevailing poll version replaces them, except against a
// poll version of the same updated_at, which it is merged into. The result
// is an update only if that changes the content hash.
func Decide(e change.Event, old *StoredEvent) (Decision, error) {
	d := Decision{Event: e, From: e.Source}
	var err error
	if old == nil {
		if d.Attrs, err = MarshalAttrs(e.Attrs); err != nil {
			return d, err
		}
		if d.Hash, err = Hash(e, d.Attrs); err != nil {
			return d, err
		}
		d.Write, d.Result.Inserted = true, 1
		d.Transitions = transitions(e, d.Event, "")
		return d, nil
	}
	if _, err = MarshalAttrs(e.Attrs); err != nil {
		return d, err
	}
	o := judge(e, old)
	switch o {
	case loses:
		d.Event = old.Event
		d.Result.Unchanged = 1
	case fills:
		d.Event = fill(old.Event, e)
		if old.Source == change.SourcePoll {
			// The poll's attributes are GitLab's whole reading of this
			// version: a key it lacks is one GitLab does not have.
			d.Attrs = old.AttrsJSON
		} else {
			d.Attrs, err = underlay(old.AttrsJSON, e.Attrs)
		}
	case prevails, overrules:
		d.Event = fill(e, old.Event)
		if e.Source == change.SourceWebhook && !old.CreatedAt.IsZero() {
			// GitLab never changes created_at: a webhook that says
			// otherwise is skewed or forged, and the poller walks back to
			// it to re-read what webhooks stored (Store.Unverified).
			d.Event.CreatedAt = old.CreatedAt
		}
		if e.Source == change.SourcePoll && (old.Source != change.SourcePoll || !e.UpdatedAt.Equal(old.UpdatedAt)) {
			d.Attrs, err = MarshalAttrs(e.Attrs)
		} else {
			d.Attrs, err = MergeAttrs(old.AttrsJSON, e.Attrs)
		}
	}
	if err != nil {
		return d, err
	}
	if o != loses {
		if d.Hash, err = Hash(d.Event, d.Attrs); err != nil {
			return d, err
		}
		switch {
		case !bytes.Equal(d.Hash, old.Hash):
			d.Write, d.Result.Updated = true, 1
		case o == overrules && old.Source != change.SourcePoll:
			// The content stands, now read from GitLab: recorded as the
			// poll's, so the poller stops re-reading it (Versions).
			d.Write, d.Result.Unchanged = true, 1
		default:
			d.Result.Unchanged = 1
		}
	}
	if !d.Write {
		d.Attrs, d.Hash = nil, nil
	}
	// Even for an event older than the stored one: a late webhook still
	// tells a state the object was in, unless the poll's version it did
	// not prevail over rules that out.
	d.Transitions = transitions(e, d.Event, old.State)
	switch {
	case o == overrules:
		a := d.Event
		d.Authority = &a
	case o <= fills && old.Source == change.SourcePoll && e.Source == change.SourceWebhook:
		a := old.Event
		d.Authority = &a
		kept := d.Transitions[:0:0]
		for _, t := range d.Transitions {
			if !contradicts(a, t.State, t.At) {
				kept = append(kept, t)
			}
		}
		d.Transitions = kept
	}
	return d, nil
}

// transitions are e's, oldest first; without any, a written row whose
// state changed from was gains an entry for it.
func transitions(e, row change.Event, was string) []change.Transition {
	if ts := e.SortedTransitions(); len(ts) > 0 {
		return ts
	}
	if row.ID == "" || row.State == "" || row.State == was {
		return nil
	}
	when := row.OccurredAt
	if when.IsZero() {
		when = row.UpdatedAt
	}
	return []change.Transition{{State: row.State, At: when.UTC()}}
}

// fill is top with what it leaves empty taken from under.
func fill(top, under change.Event) change.Event {
	for _, f := range []struct{ t, u *string }{
		{&top.ProjectPath, &under.ProjectPath}, {&top.Title, &under.Title}, {&top.State, &under.State},
		{&top.Author, &under.Author}, {&top.WebURL, &under.WebURL}, {&top.Ref, &under.Ref}, {&top.SHA, &under.SHA},
	} {
		if *f.t == "" {
			*f.t = *f.u
		}
	}
	if top.CreatedAt.IsZero() {
		top.CreatedAt = under.CreatedAt
	}
	if top.OccurredAt.IsZero() && top.State == under.State {
		top.OccurredAt = under.OccurredAt
	}
	return top
}

// underlay is MergeAttrs the other way round: the stored attributes win,
// m only adds the keys they lack.
func underlay(stored []byte, m map[string]any) ([]byte, error) {
	old, err := ExactAttrs(stored)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m)+len(old))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range old {
		out[k] = v
	}
	return MarshalAttrs(out)
}

// Step is one stored timeline entry as the timeline rule sees it.
type Step struct {
	State  string
	At     time.Time
	Source change.Source
}

// SameAt compares two instants at the precision both have: when either
// has no fraction of a second (a webhook's times are whole seconds, the
// REST API's milliseconds), both are compared to the second.
func SameAt(a, b time.Time) int {
	if a.Nanosecond() == 0 || b.Nanosecond() == 0 {
		a, b = a.Truncate(time.Second), b.Truncate(time.Second)
	}
	return a.Compare(b)
}

// Timeline applies the timeline rule for d to tl, the object's entries in
// the order they were stored: it returns the timeline after, the entries
// to remove and the transitions to add. With an Authority, the entries a
// webhook gave that it contradicts are removed (contradicts); then
// NewEntries says which of d's transitions are added.
func Timeline(tl []Step, d Decision) (after, drop []Step, add []change.Transition) {
	if a := d.Authority; a != nil {
		kept := tl[:0:0]
		for _, s := range tl {
			if s.Source == change.SourceWebhook && contradicts(*a, s.State, s.At) {
				drop = append(drop, s)
			} else {
				kept = append(kept, s)
			}
		}
		tl = kept
	}
	after, add = NewEntries(tl, d.Transitions)
	for i := len(after) - len(add); i < len(after); i++ {
		after[i].Source = d.From
	}
	return after, drop, add
}

// contradicts says whether the poll's version a rules out that the object
// entered state at at: nothing happens to an object before it was created
// or after its updated_at (GitLab's version of it), it entered its current
// state when a says (occurred_at), not before, and at updated_at it
// entered a's state or one a's transitions put there.
func contradicts(a change.Event, state string, at time.Time) bool {
	if !a.CreatedAt.IsZero() && SameAt(at, a.CreatedAt) < 0 {
		return true
	}
	if state == a.State && !a.OccurredAt.IsZero() && SameAt(at, a.OccurredAt) < 0 {
		return true
	}
	switch c := SameAt(at, a.UpdatedAt); {
	case c > 0:
		return true
	case c < 0 || state == a.State:
		return false
	}
	for _, t := range a.Transitions {
		if t.State == state && SameAt(t.At, at) == 0 {
			return false
		}
	}
	return true
}

// NewEntries returns which of ts (oldest first) an object's timeline tl
// (its entries in the order they were stored) gains, and tl with them. A
// transition is added unless the object was already known to be in that
// state then: the same state is stored at the same instant, or the latest
// entry at or before it (the last stored among those at one instant) has
// its state, which makes it a later sighting of a state the object was in.
// Instants compare at the precision both have (SameAt), so a webhook's
// whole-second time and the poll's millisecond one of the same change are
// one entry.
func NewEntries(tl []Step, ts []change.Transition) ([]Step, []change.Transition) {
	var add []change.Transition
next:
	for _, t := range ts {
		var prev *Step
		for i := range tl {
			c := &tl[i]
			k := SameAt(c.At, t.At)
			if c.State == t.State && k == 0 {
				continue next
			}
			if k <= 0 && (prev == nil || SameAt(c.At, prev.At) >= 0) {
				prev = c
			}
		}
		if prev != nil && prev.State == t.State {
			continue
		}
		tl = append(tl, Step{State: t.State, At: t.At})
		add = append(add, t)
	}
	return tl, add
}

// MarshalAttrs is the JSON of attributes as stored (encoding/json sorts
// map keys), nil for none.
func MarshalAttrs(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("attributes: %w", err)
	}
	return b, nil
}

// MergeAttrs overlays m on the stored attributes (top-level keys). Stored
// numbers are kept as they were written (json.Number), so merging in
// nothing new reproduces the stored content and with it the stored hash.
func MergeAttrs(stored []byte, m map[string]any) ([]byte, error) {
	old, err := ExactAttrs(stored)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return MarshalAttrs(m)
	}
	for k, v := range m {
		old[k] = v
	}
	return MarshalAttrs(old)
}

// ExactAttrs decodes stored attributes keeping numbers as json.Number,
// exactly as stored; nil for none or an empty object.
func ExactAttrs(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("stored attributes: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// DecodeAttrs decodes stored attributes as the store hands them out:
// numbers as float64, nil for none or an empty object.
func DecodeAttrs(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("stored attributes: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// Hash identifies what an event says, apart from which way it came in
// (Source) and its transitions, which the timeline keeps: the same object
// state from webhook and poll hashes equal. Times are hashed in UTC, so the
// same instant in another zone is the same content; attrs (as MarshalAttrs
// or MergeAttrs encoded them) are hashed in canonicalAttrs's form, so the
// same attributes hash equal whether they come from Go values or from a
// database that formats JSON its own way.
func Hash(e change.Event, attrs []byte) ([]byte, error) {
	c, err := canonicalAttrs(attrs)
	if err != nil {
		return nil, err
	}
	e.Source = ""
	e.Transitions = nil
	e.Attrs = nil
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC(), e.OccurredAt.UTC()
	// Marshalling a struct of strings, ints and valid times cannot fail.
	b, _ := json.Marshal(e)
	h := sha256.New()
	h.Write(b)
	h.Write(c)
	return h.Sum(nil), nil
}

// canonicalAttrs re-encodes JSON as encoding/json writes Go values: keys
// sorted, no spaces, integers that fit int64 in digits, other numbers as
// the float64 they denote. It returns what encoding/json wrote unchanged
// (so hashes stored before it existed still match), and maps PostgreSQL's
// jsonb forms (spaces, its key order, 1000000000000000000000 for 1e+21,
// 0.0000001 for 1e-7) to the same bytes. Integers are kept exact: read as
// float64, two ids above 2^53 that differ in the last digits would hash
// alike and an update would be lost.
func canonicalAttrs(attrs []byte) ([]byte, error) {
	if attrs == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(attrs))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("attributes: %w", err)
	}
	return json.Marshal(canonNumbers(v))
}

func canonNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = canonNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = canonNumbers(e)
		}
	}
	return v
}
