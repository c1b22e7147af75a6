package store

import (
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

var t0 = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

func minute(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// TestHashMatchesStoredHashes pins Hash to the hashes earlier versions
// stored (computed by the code each backend had before the rule moved
// here), so that re-ingesting an event stored then is still unchanged.
func TestHashMatchesStoredHashes(t *testing.T) {
	zone := time.FixedZone("X", 3600)
	e := change.Event{ID: "mr-1-2", Kind: change.KindMergeRequest, ProjectID: 1, ProjectPath: "g/p", Title: "T <&>", State: "opened",
		Author: "a", WebURL: "https://x/y", Ref: "main", SHA: "abc",
		CreatedAt: time.Date(2025, 3, 14, 9, 26, 53, 589793000, zone), UpdatedAt: time.Date(2025, 3, 14, 10, 0, 0, 123456000, zone),
		Source: change.SourceWebhook, Transitions: []change.Transition{{State: "opened", At: t0}}}
	for _, c := range []struct {
		name, attrs, want string
	}{
		{"no attributes", "", "1cce4b6e5f515755103da43ea8468eca8292ec3f42d2872f8ffda797c1046e52"},
		{"as Go writes them",
			`{"coverage":87.5,"duration":412,"html":"\u003ca\u0026b\u003e","nothing":null,"stages":["a","b"],"tag":false,"unicode key":"値","user":{"id":7,"username":"bob"}}`,
			"cc11258289376cc7317f76cfa167440eae38d33276db2485ae669efbeded3564"},
		{"exponents as Go writes them", `{"big":1e+21,"small":1e-7}`, "4f67396fc5f3a6e2d046bbbe414767ee40946d82ab3dfa64da89dae55c957524"},
		// PostgreSQL's jsonb gives the same numbers back in full.
		{"exponents as jsonb writes them", `{"big": 1000000000000000000000, "small": 0.0000001}`, "4f67396fc5f3a6e2d046bbbe414767ee40946d82ab3dfa64da89dae55c957524"},
		// SQLite's hash: PostgreSQL's went through float64 and lost the 3.
		{"integer past float64", `{"id":9007199254740993}`, "2ee077a1d3267994283fc2cb2c5b3bc84c8eab52b7fb7339e651d18b7b1a8bf6"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var attrs []byte
			if c.attrs != "" {
				attrs = []byte(c.attrs)
			}
			h, err := Hash(e, attrs)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h); got != c.want {
				t.Errorf("Hash = %s, want %s", got, c.want)
			}
		})
	}
	if _, err := Hash(e, []byte(`{"broken`)); err == nil {
		t.Error("Hash of malformed attributes: no error")
	}
}

func TestHashIgnores(t *testing.T) {
	e := change.Event{ID: "pipeline-1-1", Kind: change.KindPipeline, UpdatedAt: minute(1), Source: change.SourcePoll}
	base, _ := Hash(e, nil)
	for _, c := range []struct {
		name   string
		mutate func(*change.Event)
		same   bool
	}{
		{"source", func(e *change.Event) { e.Source = change.SourceWebhook }, true},
		{"transitions", func(e *change.Event) { e.Transitions = []change.Transition{{State: "x", At: minute(1)}} }, true},
		{"zone", func(e *change.Event) { e.UpdatedAt = e.UpdatedAt.In(time.FixedZone("Y", -7200)) }, true},
		{"attrs field (hashed from the bytes)", func(e *change.Event) { e.Attrs = map[string]any{"a": 1} }, true},
		{"state", func(e *change.Event) { e.State = "failed" }, false},
		{"updated_at", func(e *change.Event) { e.UpdatedAt = minute(2) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := e
			c.mutate(&m)
			h, _ := Hash(m, nil)
			if got := string(h) == string(base); got != c.same {
				t.Errorf("hash equal = %v, want %v", got, c.same)
			}
		})
	}
}

func TestMergeAttrs(t *testing.T) {
	for _, c := range []struct {
		name   string
		stored string
		add    map[string]any
		want   string
	}{
		{"nothing stored", "", map[string]any{"b": 1, "a": "x"}, `{"a":"x","b":1}`},
		{"nothing either", "", nil, ""},
		{"overlay top-level keys", `{"a":1,"n":{"x":1}}`, map[string]any{"n": map[string]any{"y": 2}, "c": true}, `{"a":1,"c":true,"n":{"y":2}}`},
		{"stored numbers kept as written", `{"big": 1000000000000000000000, "f": 1.50}`, nil, `{"big":1000000000000000000000,"f":1.50}`},
		{"empty stored object", `{}`, map[string]any{"a": 1}, `{"a":1}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stored []byte
			if c.stored != "" {
				stored = []byte(c.stored)
			}
			got, err := MergeAttrs(stored, c.add)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("MergeAttrs = %s, want %s", got, c.want)
			}
		})
	}
	if _, err := MergeAttrs([]byte(`[1]`), nil); err == nil {
		t.Error("MergeAttrs of a stored array: no error")
	}
}

func TestDecodeAttrs(t *testing.T) {
	for _, c := range []struct {
		in    string
		exact bool
		want  map[string]any
	}{
		{"", false, nil},
		{"{}", false, nil},
		{`{"n":2}`, false, map[string]any{"n": 2.0}},
		{`{"n":2}`, true, map[string]any{"n": json.Number("2")}},
		{"{}", true, nil},
	} {
		decode := DecodeAttrs
		if c.exact {
			decode = ExactAttrs
		}
		got, err := decode([]byte(c.in))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("decode(%q, exact %v) = %#v, %v; want %#v", c.in, c.exact, got, err, c.want)
		}
	}
}

func TestDecide(t *testing.T) {
	mr := func(u int, state string, attrs map[string]any) change.Event {
		return change.Event{ID: "mr-1-1", Kind: change.KindMergeRequest, State: state, UpdatedAt: minute(u), OccurredAt: minute(u),
			Source: change.SourcePoll, Attrs: attrs}
	}
	stored := func(e change.Event) *StoredEvent {
		attrs, _ := MarshalAttrs(e.Attrs)
		h, _ := Hash(e, attrs)
		e.Attrs, e.Transitions = nil, nil
		return &StoredEvent{Event: e, Hash: h, AttrsJSON: attrs}
	}
	tr := func(state string, m int) change.Transition { return change.Transition{State: state, At: minute(m)} }
	withTr := func(e change.Event, ts ...change.Transition) change.Event { e.Transitions = ts; return e }
	noOccurred := func(e change.Event) change.Event { e.OccurredAt = time.Time{}; return e }
	old := mr(5, "opened", map[string]any{"a": 1})

	for _, c := range []struct {
		name      string
		e         change.Event
		stored    *StoredEvent
		want      UpsertResult
		write     bool
		wantAttrs string
		wantTr    []change.Transition
	}{
		{"new", mr(5, "opened", nil), nil, UpsertResult{Inserted: 1}, true, "", []change.Transition{tr("opened", 5)}},
		{"new without occurred_at: entry at updated_at", noOccurred(mr(5, "opened", nil)), nil, UpsertResult{Inserted: 1}, true, "", []change.Transition{tr("opened", 5)}},
		{"new without state: no entry", mr(5, "", nil), nil, UpsertResult{Inserted: 1}, true, "", nil},
		{"older", mr(4, "closed", nil), stored(old), UpsertResult{Unchanged: 1}, false, "", nil},
		{"older keeps its transitions", withTr(mr(4, "closed", nil), tr("draft", 1)), stored(old), UpsertResult{Unchanged: 1}, false, "", []change.Transition{tr("draft", 1)}},
		{"newer replaces attributes", mr(6, "opened", map[string]any{"b": 2}), stored(old), UpsertResult{Updated: 1}, true, `{"b":2}`, nil},
		{"newer with another state", mr(6, "merged", nil), stored(old), UpsertResult{Updated: 1}, true, "", []change.Transition{tr("merged", 6)}},
		{"same again", old, stored(old), UpsertResult{Unchanged: 1}, false, "", nil},
		{"same from the other way in", func() change.Event { e := old; e.Source = change.SourceWebhook; return e }(), stored(old), UpsertResult{Unchanged: 1}, false, "", nil},
		{"equal updated_at merges attributes", mr(5, "opened", map[string]any{"b": 2}), stored(old), UpsertResult{Updated: 1}, true, `{"a":1,"b":2}`, nil},
		{"equal updated_at, subset of attributes", mr(5, "opened", map[string]any{"a": 1}), stored(old), UpsertResult{Unchanged: 1}, false, "", nil},
		{"explicit transitions win over the state", withTr(mr(7, "merged", nil), tr("merged", 7), tr("approved", 6)), stored(old),
			UpsertResult{Updated: 1}, true, "", []change.Transition{tr("approved", 6), tr("merged", 7)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decide(c.e, c.stored)
			if err != nil {
				t.Fatal(err)
			}
			if d.Result != c.want || d.Write != c.write {
				t.Errorf("result %+v write %v, want %+v write %v", d.Result, d.Write, c.want, c.write)
			}
			if c.write && string(d.Attrs) != c.wantAttrs {
				t.Errorf("attrs %s, want %s", d.Attrs, c.wantAttrs)
			}
			if c.write {
				want, _ := Hash(d.Event, d.Attrs)
				if string(d.Hash) != string(want) {
					t.Errorf("hash is not the hash of what is written")
				}
			} else if d.Hash != nil || d.Attrs != nil {
				t.Errorf("nothing to write, yet attrs %s hash %x", d.Attrs, d.Hash)
			}
			if !reflect.DeepEqual(d.Transitions, c.wantTr) && (len(d.Transitions) > 0 || len(c.wantTr) > 0) {
				t.Errorf("transitions %v, want %v", d.Transitions, c.wantTr)
			}
		})
	}
	if _, err := Decide(mr(1, "x", map[string]any{"bad": func() {}}), nil); err == nil {
		t.Error("Decide of unencodable attributes: no error")
	}
}

func TestNewEntries(t *testing.T) {
	st := func(state string, m int) Step { return Step{State: state, At: minute(m)} }
	tr := func(state string, m int) change.Transition { return change.Transition{State: state, At: minute(m)} }
	for _, c := range []struct {
		name string
		tl   []Step
		ts   []change.Transition
		want []change.Transition
	}{
		{"empty timeline", nil, []change.Transition{tr("created", 1), tr("running", 2)}, []change.Transition{tr("created", 1), tr("running", 2)}},
		{"same entry stored", []Step{st("running", 2)}, []change.Transition{tr("running", 2)}, nil},
		{"a later sighting of the same state", []Step{st("running", 2)}, []change.Transition{tr("running", 4)}, nil},
		{"a state revisited", []Step{st("running", 2), st("failed", 3)}, []change.Transition{tr("running", 5)}, []change.Transition{tr("running", 5)}},
		{"an earlier state arriving late", []Step{st("success", 10)}, []change.Transition{tr("running", 5)}, []change.Transition{tr("running", 5)}},
		{"before everything stored", []Step{st("running", 5)}, []change.Transition{tr("running", 1)}, []change.Transition{tr("running", 1)}},
		// At one instant the entry stored last is the state then.
		{"ties: last stored wins", []Step{st("a", 3), st("b", 3)}, []change.Transition{tr("b", 4), tr("a", 5)}, []change.Transition{tr("a", 5)}},
		{"within one call", nil, []change.Transition{tr("running", 1), tr("running", 1)}, []change.Transition{tr("running", 1)}},
		// A webhook's whole second and the poll's milliseconds of one change.
		{"whole second after milliseconds", []Step{{State: "opened", At: minute(1).Add(49 * time.Millisecond)}},
			[]change.Transition{tr("opened", 1)}, nil},
		{"milliseconds after whole second", []Step{st("opened", 1)},
			[]change.Transition{{State: "opened", At: minute(1).Add(49 * time.Millisecond)}}, nil},
		{"two fine times differ", []Step{{State: "a", At: minute(1).Add(49 * time.Millisecond)}, {State: "b", At: minute(1).Add(60 * time.Millisecond)}},
			[]change.Transition{{State: "a", At: minute(1).Add(70 * time.Millisecond)}}, []change.Transition{{State: "a", At: minute(1).Add(70 * time.Millisecond)}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tl, add := NewEntries(append([]Step(nil), c.tl...), c.ts)
			if !reflect.DeepEqual(add, c.want) {
				t.Errorf("added %v, want %v", add, c.want)
			}
			if len(tl) != len(c.tl)+len(add) {
				t.Errorf("timeline has %d entries, want %d", len(tl), len(c.tl)+len(add))
			}
		})
	}
}

// The authority of the poll (docs/architecture.md, "One history").
func TestDecideObserved(t *testing.T) {
	ev := func(src change.Source, obs, u int, state string) change.Event {
		return change.Event{ID: "mr-1-1", Kind: change.KindMergeRequest, State: state, Author: "alice",
			CreatedAt: minute(0), UpdatedAt: minute(u), OccurredAt: minute(u), Source: src, ObservedAt: minute(obs),
			Attrs: map[string]any{"k": string(src)}}
	}
	stored := func(e change.Event) *StoredEvent {
		attrs, _ := MarshalAttrs(e.Attrs)
		h, _ := Hash(e, attrs)
		e.Attrs = nil
		return &StoredEvent{Event: e, Hash: h, AttrsJSON: attrs}
	}
	poll, hook := change.SourcePoll, change.SourceWebhook
	for _, c := range []struct {
		name       string
		e, old     change.Event
		write      bool
		state      string
		authority  bool
		wantSource change.Source
	}{
		{"poll read later overrules an older updated_at", ev(poll, 20, 5, "opened"), ev(hook, 10, 900, "closed"), true, "opened", true, poll},
		{"poll read earlier: updated_at rule", ev(poll, 5, 5, "opened"), ev(hook, 10, 900, "closed"), false, "", false, ""},
		{"webhook seen before the poll, newer updated_at", ev(hook, 5, 9, "merged"), ev(poll, 10, 5, "opened"), false, "", true, ""},
		{"webhook seen after the poll, newer", ev(hook, 15, 9, "merged"), ev(poll, 10, 5, "opened"), true, "merged", false, hook},
		{"webhook, equal updated_at, other state", ev(hook, 15, 5, "closed"), ev(poll, 10, 5, "opened"), false, "", true, ""},
		{"webhook over webhook: updated_at", ev(hook, 5, 9, "merged"), ev(hook, 10, 5, "opened"), true, "merged", false, hook},
		{"poll confirms a webhook's content", func() change.Event {
			e := ev(hook, 10, 5, "opened")
			e.Source, e.ObservedAt = poll, minute(20)
			return e
		}(),
			ev(hook, 10, 5, "opened"), true, "opened", true, poll},
		{"unknown observation: updated_at rule", ev(poll, 0, 4, "opened"), ev(hook, 10, 5, "closed"), false, "", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "poll confirms a webhook's content" {
				c.e.Attrs = map[string]any{"k": "webhook"}
			}
			d, err := Decide(c.e, stored(c.old))
			if err != nil {
				t.Fatal(err)
			}
			if d.Write != c.write || (d.Authority != nil) != c.authority {
				t.Fatalf("write %v authority %v, want %v %v", d.Write, d.Authority != nil, c.write, c.authority)
			}
			if c.write && (d.Event.State != c.state || d.Event.Source != c.wantSource) {
				t.Errorf("row %s from %s, want %s from %s", d.Event.State, d.Event.Source, c.state, c.wantSource)
			}
		})
	}
}

func TestTimelineHeals(t *testing.T) {
	a := change.Event{State: "opened", CreatedAt: minute(0), UpdatedAt: minute(5), OccurredAt: minute(0),
		Transitions: []change.Transition{{State: "opened", At: minute(0)}}}
	tl := []Step{
		{State: "opened", At: minute(0), Source: change.SourcePoll},
		{State: "closed", At: minute(3), Source: change.SourceWebhook},                             // legit: before updated_at
		{State: "closed", At: minute(5), Source: change.SourceWebhook},                             // at updated_at, not a's state
		{State: "closed", At: minute(900), Source: change.SourceWebhook},                           // after updated_at
		{State: "opened", At: minute(-1), Source: change.SourceWebhook},                            // before creation
		{State: "closed", At: minute(900), Source: change.SourcePoll},                              // the poll's own: kept
		{State: "opened", At: minute(4), Source: change.SourceWebhook},                             // reopened: kept
		{State: "opened", At: minute(5).Add(300 * time.Millisecond), Source: change.SourceWebhook}, // same second as updated_at, a's state
	}
	after, drop, add := Timeline(tl, Decision{Authority: &a, Transitions: a.Transitions, From: change.SourcePoll})
	if len(drop) != 3 || drop[0].At != minute(5) || drop[1].At != minute(900) || drop[2].At != minute(-1) {
		t.Errorf("dropped %v", drop)
	}
	if len(add) != 0 || len(after) != len(tl)-3 {
		t.Errorf("added %v, after %v", add, after)
	}
}
