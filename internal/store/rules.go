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

// StoredEvent is what the upsert rule needs of an event's stored version.
type StoredEvent struct {
	UpdatedAt time.Time
	Hash      []byte
	State     string
	Attrs     []byte // the stored JSON object, nil for none
}

// Decision is what Upsert does with one event.
type Decision struct {
	// Result has exactly one of its counts at 1.
	Result UpsertResult
	// Write says the event's row is to be written, with Attrs and Hash.
	Write bool
	Attrs []byte // nil for none
	Hash  []byte
	// Transitions are what the event says about its timeline, oldest
	// first; NewEntries says which of them the timeline gains.
	Transitions []change.Transition
}

// Decide applies the upsert rule to e against its stored version, nil when
// the id is new. e's times must already be as the backend stores them
// (truncated to its precision), so that what is compared and hashed is what
// a later read returns.
//
// An older UpdatedAt changes nothing; a newer one replaces the event whole.
// An equal one, typically the same object from webhook and poll whose
// payloads carry different attributes, merges the attributes and is an
// update only if that changes the content hash.
func Decide(e change.Event, old *StoredEvent) (Decision, error) {
	var d Decision
	attrs, err := MarshalAttrs(e.Attrs)
	if err != nil {
		return d, err
	}
	switch {
	case old == nil:
		d.Write, d.Result.Inserted = true, 1
	case e.UpdatedAt.Before(old.UpdatedAt):
		d.Result.Unchanged = 1
	case e.UpdatedAt.After(old.UpdatedAt):
		d.Write, d.Result.Updated = true, 1
	default:
		if attrs, err = MergeAttrs(old.Attrs, e.Attrs); err != nil {
			return d, err
		}
		if d.Hash, err = Hash(e, attrs); err != nil {
			return d, err
		}
		if bytes.Equal(d.Hash, old.Hash) {
			d.Result.Unchanged = 1
		} else {
			d.Write, d.Result.Updated = true, 1
		}
	}
	if !d.Write {
		d.Hash = nil
	} else if d.Attrs = attrs; d.Hash == nil {
		if d.Hash, err = Hash(e, attrs); err != nil {
			return d, err
		}
	}

	// Even for an event older than the stored one: a late webhook still
	// tells a state the object was in.
	d.Transitions = e.SortedTransitions()
	if len(d.Transitions) == 0 && d.Write && e.State != "" && (old == nil || e.State != old.State) {
		when := e.OccurredAt
		if when.IsZero() {
			when = e.UpdatedAt
		}
		d.Transitions = []change.Transition{{State: e.State, At: when.UTC()}}
	}
	return d, nil
}

// Step is one stored timeline entry as the timeline rule sees it.
type Step struct {
	State string
	At    time.Time
}

// NewEntries returns which of ts (oldest first) an object's timeline tl
// (its entries in the order they were stored) gains, and tl with them. A
// transition is added unless the object was already known to be in that
// state then: the same (state, at) is stored, or the latest entry at or
// before it (the last stored among those at one instant) has its state,
// which makes it a later sighting of a state the object was in.
func NewEntries(tl []Step, ts []change.Transition) ([]Step, []change.Transition) {
	var add []change.Transition
next:
	for _, t := range ts {
		var prev *Step
		for i := range tl {
			c := &tl[i]
			if c.State == t.State && c.At.Equal(t.At) {
				continue next
			}
			if !c.At.After(t.At) && (prev == nil || !c.At.Before(prev.At)) {
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
