package store

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// dollar is a dialect written like PostgreSQL's, times bound as they are.
var dollar = Dialect{
	Param:     func(n int) string { return "$" + strconv.Itoa(n) },
	Time:      func(t time.Time) any { return t },
	HasPrefix: func(c, p string) string { return "starts_with(" + c + ", " + p + ")" },
	JSON:      func(p string) string { return p + "::jsonb" },
}

func TestListEventsStatement(t *testing.T) {
	cur := EventCursor(minute(3), "mr-1-1")
	for _, c := range []struct {
		name  string
		f     Filter
		where string
		args  []any
		limit int
	}{
		{"no filter", Filter{}, "", []any{101}, 100},
		{"every filter", Filter{Kind: change.KindPipeline, ProjectID: 7, ProjectPath: "g/p", Author: "bob", State: "failed",
			Since: minute(1), Until: minute(9), Limit: 5, Cursor: cur},
			" WHERE kind = $1 AND project_path = $2 AND author = $3 AND state = $4 AND project_id = $5 AND occurred_at >= $6" +
				" AND occurred_at < $7 AND (occurred_at, id) < ($8, $9)",
			[]any{"pipeline", "g/p", "bob", "failed", int64(7), minute(1), minute(9), minute(3), "mr-1-1", 6}, 5},
		{"limit clamped", Filter{Limit: 5000}, "", []any{MaxLimit + 1}, MaxLimit},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := dollar.ListEvents(c.f)
			if err != nil {
				t.Fatal(err)
			}
			want := `SELECT ` + EventColumns + ` FROM events` + c.where + ` ORDER BY occurred_at DESC, id DESC LIMIT $` + strconv.Itoa(len(c.args))
			if l.SQL != want || !reflect.DeepEqual(l.Args, c.args) || l.Limit != c.limit {
				t.Errorf("got\n%s %v %d\nwant\n%s %v %d", l.SQL, l.Args, l.Limit, want, c.args, c.limit)
			}
		})
	}
	for _, f := range []Filter{{Limit: -1}, {Cursor: "bogus"}} {
		if _, err := dollar.ListEvents(f); err == nil {
			t.Errorf("ListEvents(%+v): no error", f)
		}
	}
}

func TestListByIDStatements(t *testing.T) {
	for _, c := range []struct {
		name string
		l    func() (Listing, error)
		want string
		args []any
	}{
		{"audit, every filter", func() (Listing, error) {
			return dollar.ListAudit(AuditFilter{Cursor: "9", Since: minute(1), Until: minute(2), Job: "sync:1", Status: 200, PathPrefix: "/a", Limit: 3})
		}, `SELECT ` + AuditColumns + ` FROM audit WHERE id < $1 AND at >= $2 AND at < $3 AND job = $4 AND status = $5` +
			` AND starts_with(path, $6) ORDER BY id DESC LIMIT $7`,
			[]any{int64(9), minute(1), minute(2), "sync:1", 200, "/a", 4}},
		{"audit, calls without an answer", func() (Listing, error) { return dollar.ListAudit(AuditFilter{Status: -1}) },
			`SELECT ` + AuditColumns + ` FROM audit WHERE status = 0 ORDER BY id DESC LIMIT $1`, []any{101}},
		{"deliveries", func() (Listing, error) {
			return dollar.ListDeliveries(DeliveryFilter{Cursor: "5", Status: DeliveryFailed})
		},
			`SELECT ` + DeliveryColumns + ` FROM deliveries WHERE id < $1 AND status = $2 ORDER BY id DESC LIMIT $3`,
			[]any{int64(5), "failed", 101}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := c.l()
			if err != nil {
				t.Fatal(err)
			}
			if l.SQL != c.want || !reflect.DeepEqual(l.Args, c.args) {
				t.Errorf("got\n%s %v\nwant\n%s %v", l.SQL, l.Args, c.want, c.args)
			}
		})
	}
	if _, err := dollar.ListAudit(AuditFilter{Cursor: "0"}); !errors.Is(err, ErrInvalidCursor) {
		t.Errorf("audit cursor 0: %v", err)
	}
	if _, err := dollar.ListDeliveries(DeliveryFilter{Limit: -2}); err == nil {
		t.Error("deliveries with a negative limit: no error")
	}
}

func TestListingPages(t *testing.T) {
	l := Listing{Limit: 2}
	es := []change.Event{{ID: "c", OccurredAt: minute(3)}, {ID: "b", OccurredAt: minute(2)}, {ID: "a", OccurredAt: minute(1)}}
	p := l.EventPage(es)
	if len(p.Events) != 2 || p.NextCursor != EventCursor(minute(2), "b") {
		t.Errorf("full page: %d events, cursor %q", len(p.Events), p.NextCursor)
	}
	if p := l.EventPage(es[:2]); len(p.Events) != 2 || p.NextCursor != "" {
		t.Errorf("last page exactly full: %d events, cursor %q", len(p.Events), p.NextCursor)
	}
	if p := l.AuditPage([]AuditEntry{{ID: 9}, {ID: 8}, {ID: 7}}); len(p.Entries) != 2 || p.NextCursor != "8" {
		t.Errorf("audit page: %d entries, cursor %q", len(p.Entries), p.NextCursor)
	}
	if p := l.DeliveryPage([]Delivery{{ID: 3}}); len(p.Deliveries) != 1 || p.NextCursor != "" {
		t.Errorf("delivery page: %d deliveries, cursor %q", len(p.Deliveries), p.NextCursor)
	}
}

func TestQueryWhere(t *testing.T) {
	q := dollar.Query()
	if q.WhereSQL() != "" {
		t.Errorf("no conditions: %q", q.WhereSQL())
	}
	q.Where("a = ? AND b < ?", 1, 2)
	q.Where("c IS NULL")
	q.Where(dollar.HasPrefix("p", q.Arg("x")))
	if got, want := q.WhereSQL(), " WHERE a = $1 AND b < $2 AND c IS NULL AND starts_with(p, $3)"; got != want {
		t.Errorf("WhereSQL = %q, want %q", got, want)
	}
	if !reflect.DeepEqual(q.Args(), []any{1, 2, "x"}) {
		t.Errorf("Args = %v", q.Args())
	}
}

func TestDeliveryArgs(t *testing.T) {
	args, err := dollar.DeliveryArgs(Delivery{ID: 1, IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if args[5] != "{}" || args[7] != DeliveryPending || args[11] == nil || len(args[11].([]byte)) != 0 {
		t.Errorf("defaults: headers %v status %v body %#v", args[5], args[7], args[11])
	}
	if _, err := dollar.NewDeliveryArgs(Delivery{}); err == nil {
		t.Error("a new delivery without an idempotency key: no error")
	}
	late := dollar
	late.Check = func(name string, t time.Time) error { return errors.New(name + " out of range") }
	if _, err := late.NewDeliveryArgs(Delivery{IdempotencyKey: "k"}); err == nil {
		t.Error("a time the backend cannot hold: no error")
	}
}

func TestMarkDelivery(t *testing.T) {
	now := minute(7)
	for _, c := range []struct {
		status    string
		processed time.Time
	}{{DeliveryProcessed, now}, {DeliveryStoredRaw, now}, {DeliveryFailed, time.Time{}}, {DeliveryPending, time.Time{}}} {
		_, args := dollar.MarkDelivery(3, c.status, "e", now)
		if !reflect.DeepEqual(args, []any{c.status, "e", c.processed, int64(3)}) {
			t.Errorf("%s: args %v", c.status, args)
		}
	}
}

func TestUpsertStatements(t *testing.T) {
	for _, c := range []struct {
		name, got, want string
	}{
		{"events", dollar.PutEvent(true), `INSERT INTO events (` + EventColumns + `, hash, observed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, $17)
		ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, project_id = excluded.project_id, project_path = excluded.project_path, ` +
			`title = excluded.title, state = excluded.state, author = excluded.author, web_url = excluded.web_url, ref = excluded.ref, ` +
			`sha = excluded.sha, created_at = excluded.created_at, updated_at = excluded.updated_at, occurred_at = excluded.occurred_at, ` +
			`source = excluded.source, attrs = excluded.attrs, hash = excluded.hash, observed_at = excluded.observed_at WHERE excluded.updated_at > events.updated_at`},
		{"sync state", dollar.PutSyncState(), `INSERT INTO sync_state (` + SyncColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (project_id, kind) DO UPDATE SET project_path = excluded.project_path, cursor_at = excluded.cursor_at, ` +
			`last_run_at = excluded.last_run_at, last_success_at = excluded.last_success_at, fetched = excluded.fetched, ` +
			`stored = excluded.stored, last_error = excluded.last_error`},
	} {
		if c.got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, c.got, c.want)
		}
	}
}

func TestCheckEvent(t *testing.T) {
	bounded := dollar
	bounded.Check = func(name string, at time.Time) error {
		if at.Year() > 2200 {
			return errors.New(name + " too late")
		}
		return nil
	}
	ok := change.Event{ID: "mr-1-1", Kind: change.KindMergeRequest, UpdatedAt: minute(1), Source: change.SourcePoll}
	late := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		d    Dialect
		h    History
		bad  bool
	}{
		{"valid", bounded, History{Event: ok}, false},
		{"invalid", dollar, History{Event: change.Event{ID: "x"}}, true},
		{"late occurred_at", bounded, History{Event: func() change.Event { e := ok; e.OccurredAt = late; return e }()}, true},
		{"late occurred_at, any time held", dollar, History{Event: func() change.Event { e := ok; e.OccurredAt = late; return e }()}, false},
		{"late transition", bounded, History{Event: func() change.Event {
			e := ok
			e.Transitions = []change.Transition{{State: "merged", At: late}}
			return e
		}()}, true},
		{"late timeline entry", bounded, History{Event: ok, Timeline: []change.TimelineEntry{{State: "opened", At: late}}}, true},
	} {
		if err := c.d.CheckHistory(c.h); (err != nil) != c.bad {
			t.Errorf("%s: err %v, want error %v", c.name, err, c.bad)
		}
	}
}
