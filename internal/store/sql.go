package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// The SQL backends keep the same tables with the same columns; what differs
// is how parameters are written, how a time is bound and read, and a few
// functions. The statements and the reading of their rows are written here
// once, in terms of a Dialect and a Scanner.

// Dialect is what differs between the SQL backends in the statements they
// share.
type Dialect struct {
	// Param is the placeholder of the n-th bound parameter, from 1.
	Param func(n int) string
	// Time is t as the backend binds a time.
	Time func(t time.Time) any
	// HasPrefix is the condition that column starts with the text bound at
	// placeholder p. LIKE would read the % and _ in ids and paths.
	HasPrefix func(column, p string) string
	// JSON is placeholder p where a JSON column takes it.
	JSON func(p string) string
	// Overriding is what an INSERT that sets an identity column says
	// before VALUES.
	Overriding string
	// Check refuses a time the backend cannot hold, naming it name; nil
	// when it holds every time.
	Check func(name string, t time.Time) error
	// Position is the SQL of the position of text sub in s, from 1; 0
	// when it is not in it.
	Position func(s, sub string) string
	// JobDays says the backend keeps fact_job_days, the jobs of each
	// UTC day counted over every project (its migration says how).
	JobDays bool
	// ForUpdate ends a SELECT in a write transaction (SQL.Tx) whose rows
	// are then written: it locks them against writers meanwhile. Empty
	// where the transaction holds the database's write lock from its
	// start (SQLite's BEGIN IMMEDIATE).
	ForUpdate string
}

// CheckEvent refuses an event that fails Validate, or holds a time the
// backend cannot.
func (d Dialect) CheckEvent(e change.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if d.Check == nil {
		return nil
	}
	for _, c := range []struct {
		name string
		t    time.Time
	}{{"created_at", e.CreatedAt}, {"updated_at", e.UpdatedAt}, {"occurred_at", e.OccurredAt}} {
		if err := d.Check(c.name, c.t); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	for _, t := range e.Transitions {
		if err := d.Check("transition "+t.State, t.At); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	return nil
}

// CheckHistory is CheckEvent for an imported history, timeline included.
func (d Dialect) CheckHistory(h History) error {
	if err := d.CheckEvent(h.Event); err != nil {
		return err
	}
	for _, t := range h.Timeline {
		if d.Check == nil {
			break
		}
		if err := d.Check("timeline "+t.State, t.At); err != nil {
			return fmt.Errorf("event %s: %w", h.Event.ID, err)
		}
	}
	return nil
}

// Query collects the conditions and arguments of a statement.
type Query struct {
	d     Dialect
	where []string
	args  []any
}

// Query starts an empty one.
func (d Dialect) Query() *Query { return &Query{d: d} }

// Arg binds v and returns its placeholder.
func (q *Query) Arg(v any) string {
	q.args = append(q.args, v)
	return q.d.Param(len(q.args))
}

// Where adds a condition; each ? in cond binds the next of args.
func (q *Query) Where(cond string, args ...any) {
	var b strings.Builder
	for _, a := range args {
		before, after, _ := strings.Cut(cond, "?")
		b.WriteString(before)
		b.WriteString(q.Arg(a))
		cond = after
	}
	b.WriteString(cond)
	q.where = append(q.where, b.String())
}

// AnyOf adds the condition that column equals one of vs: "column = ?"
// for one value, "column IN (?, ...)" for more, nothing for none.
func (q *Query) AnyOf(column string, vs []any) {
	switch len(vs) {
	case 0:
	case 1:
		q.Where(column+" = ?", vs[0])
	default:
		ps := make([]string, len(vs))
		for i, v := range vs {
			ps[i] = q.Arg(v)
		}
		q.where = append(q.where, column+" IN ("+strings.Join(ps, ", ")+")")
	}
}

// WhereSQL is " WHERE" and the conditions joined by AND, or "".
func (q *Query) WhereSQL() string {
	if len(q.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.where, " AND ")
}

// Args are the bound arguments, in placeholder order.
func (q *Query) Args() []any { return q.args }

// Params is n placeholders from the first, comma-separated, for VALUES.
func (d Dialect) Params(n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = d.Param(i + 1)
	}
	return strings.Join(ps, ", ")
}

// Column lists of the shared tables.
const (
	EventColumns = `id, kind, project_id, project_path, title, state, author, web_url, ref, sha,
	created_at, updated_at, occurred_at, source, attrs`
	ProjectColumns  = `id, path, name, web_url, default_branch, archived, last_activity_at, status, status_detail, status_at`
	SyncColumns     = `project_id, kind, project_path, cursor_at, last_run_at, last_success_at, fetched, stored, last_error`
	AuditColumns    = `id, at, method, path, status, duration_ns, rate_limit_remaining, job, error`
	DeliveryColumns = `id, idempotency_key, event_type, event_uuid, webhook_uuid, headers, received_at, status, attempts, last_error, processed_at`
)

// Listing is a page's statement: its SQL and arguments, and the page size
// (the statement asks for one row more, to tell whether a page follows).
type Listing struct {
	SQL   string
	Args  []any
	Limit int
}

// ListEvents is List's statement. Keyset, not OFFSET: a page starts after
// the last row handed out, so rows stored meanwhile neither repeat nor skip.
func (d Dialect) ListEvents(f Filter) (Listing, error) {
	limit, err := PageLimit(f.Limit)
	if err != nil {
		return Listing{}, err
	}
	q := d.Query()
	kinds := make([]string, len(f.Kinds))
	for i, k := range f.Kinds {
		kinds[i] = string(k)
	}
	for _, c := range []struct {
		col string
		one string
		any []string
	}{
		{"kind", string(f.Kind), kinds}, {"project_path", f.ProjectPath, f.ProjectPaths},
		{"author", f.Author, f.Authors}, {"state", f.State, f.States}, {"connection", "", f.Connections},
	} {
		var vs []any
		for _, v := range append([]string{c.one}, c.any...) {
			if v != "" && !slices.Contains(vs, any(v)) {
				vs = append(vs, v)
			}
		}
		q.AnyOf(c.col, vs)
	}
	var projects []any
	for _, id := range append([]int64{f.ProjectID}, f.ProjectIDs...) {
		if id != 0 && !slices.Contains(projects, any(id)) {
			projects = append(projects, id)
		}
	}
	q.AnyOf("project_id", projects)
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"since", f.Since}, {"until", f.Until}} {
		if err := CheckTime(t.name, t.t); err != nil {
			return Listing{}, err
		}
	}
	if !f.Since.IsZero() {
		q.Where("occurred_at >= ?", d.Time(f.Since))
	}
	if !f.Until.IsZero() {
		q.Where("occurred_at < ?", d.Time(f.Until))
	}
	if f.Cursor != "" {
		occurred, id, err := ParseEventCursor(f.Cursor)
		if err != nil {
			return Listing{}, err
		}
		if !InTimeRange(occurred) {
			return Listing{}, fmt.Errorf("%w %q: time outside the storable range", ErrInvalidCursor, f.Cursor)
		}
		q.Where("(occurred_at, id) < (?, ?)", d.Time(occurred), id)
	}
	sql := `SELECT ` + EventColumns + ` FROM events` + q.WhereSQL() +
		` ORDER BY occurred_at DESC, id DESC LIMIT ` + q.Arg(limit+1)
	return Listing{sql, q.Args(), limit}, nil
}

// ListAudit is ListAudit's statement.
func (d Dialect) ListAudit(f AuditFilter) (Listing, error) {
	return d.byID("audit", AuditColumns, f.Cursor, f.Limit, func(q *Query) {
		if !f.Since.IsZero() {
			q.Where("at >= ?", d.Time(f.Since))
		}
		if !f.Until.IsZero() {
			q.Where("at < ?", d.Time(f.Until))
		}
		if f.Job != "" {
			q.Where("job = ?", f.Job)
		}
		switch {
		case f.Status == -1:
			q.Where("status = 0")
		case f.Status != 0:
			q.Where("status = ?", f.Status)
		}
		if f.PathPrefix != "" {
			q.Where(d.HasPrefix("path", q.Arg(f.PathPrefix)))
		}
	})
}

// ListDeliveries is ListDeliveries' statement.
func (d Dialect) ListDeliveries(f DeliveryFilter) (Listing, error) {
	return d.byID("deliveries", DeliveryColumns, f.Cursor, f.Limit, func(q *Query) {
		if f.Status != "" {
			q.Where("status = ?", f.Status)
		}
	})
}

// byID is the statement of a listing of table newest id first, from an
// IDCursor on, with the conditions where adds.
func (d Dialect) byID(table, columns, cursor string, n int, where func(*Query)) (Listing, error) {
	limit, err := PageLimit(n)
	if err != nil {
		return Listing{}, err
	}
	q := d.Query()
	if cursor != "" {
		id, err := ParseIDCursor(cursor)
		if err != nil {
			return Listing{}, err
		}
		q.Where("id < ?", id)
	}
	where(q)
	sql := `SELECT ` + columns + ` FROM ` + table + q.WhereSQL() + ` ORDER BY id DESC LIMIT ` + q.Arg(limit+1)
	return Listing{sql, q.Args(), limit}, nil
}

// more cuts the row that tells a page follows.
func more[T any](rows []T, limit int) ([]T, bool) {
	if len(rows) > limit {
		return rows[:limit], true
	}
	return rows, false
}

// EventPage is List's page from the rows of ListEvents.
func (l Listing) EventPage(es []change.Event) Page {
	es, next := more(es, l.Limit)
	p := Page{Events: es}
	if next {
		last := es[len(es)-1]
		p.NextCursor = EventCursor(last.OccurredAt, last.ID)
	}
	return p
}

// AuditPage is ListAudit's page from the rows of ListAudit.
func (l Listing) AuditPage(es []AuditEntry) AuditPage {
	es, next := byIDPage(es, l.Limit, func(e AuditEntry) int64 { return e.ID })
	return AuditPage{Entries: es, NextCursor: next}
}

// DeliveryPage is ListDeliveries' page from the rows of ListDeliveries.
func (l Listing) DeliveryPage(ds []Delivery) DeliveryPage {
	ds, next := byIDPage(ds, l.Limit, func(d Delivery) int64 { return d.ID })
	return DeliveryPage{Deliveries: ds, NextCursor: next}
}

// byIDPage cuts the row that tells a page follows and, if one does, says
// its cursor.
func byIDPage[T any](rows []T, limit int, id func(T) int64) ([]T, string) {
	rows, next := more(rows, limit)
	if !next {
		return rows, ""
	}
	return rows, IDCursor(id(rows[len(rows)-1]))
}

// StoredColumns are what the upsert rule reads of an event's stored
// version (Scanner.Stored).
const StoredColumns = EventColumns + `, hash, observed_at`

// PutEvent writes an event row (EventArgs). With onlyNewer a stored row is
// replaced only by a newer updated_at (ImportEvents); without, always (the
// caller decided).
func (d Dialect) PutEvent(onlyNewer bool) string {
	ps := strings.Split(d.Params(17), ", ")
	ps[14] = d.JSON(ps[14])
	q := upsertInto("events", StoredColumns, "id", ps)
	if onlyNewer {
		q += ` WHERE excluded.updated_at > events.updated_at`
	}
	return q
}

// upsertInto inserts a row of table, or replaces every column but the
// key's of the row with its key.
func upsertInto(table, columns, key string, params []string) string {
	var set []string
	for _, c := range strings.Split(columns, ",") {
		c = strings.TrimSpace(c)
		if !strings.Contains(", "+key+",", ", "+c+",") {
			set = append(set, c+" = excluded."+c)
		}
	}
	return `INSERT INTO ` + table + ` (` + columns + `) VALUES (` + strings.Join(params, ", ") + `)
		ON CONFLICT (` + key + `) DO UPDATE SET ` + strings.Join(set, ", ")
}

// EventArgs are PutEvent's arguments.
func (d Dialect) EventArgs(e change.Event, attrs, hash []byte) []any {
	var a any
	if attrs != nil {
		a = string(attrs)
	}
	return []any{e.ID, string(e.Kind), e.ProjectID, e.ProjectPath, e.Title,
		e.State, e.Author, e.WebURL, e.Ref, e.SHA,
		d.Time(e.CreatedAt), d.Time(e.UpdatedAt), d.Time(e.OccurredAt), string(e.Source), a, hash,
		d.Time(e.ObservedAt)}
}

// DropTimeline removes a timeline entry (event id, state, at) the upsert
// rule found contradicted by a poll (Timeline).
func (d Dialect) DropTimeline() string {
	return `DELETE FROM timeline WHERE event_id = ` + d.Param(1) + ` AND state = ` + d.Param(2) + ` AND at = ` + d.Param(3)
}

// AddTimeline adds a timeline entry (event id, state, at, source) unless
// the same (event id, state, at) is stored.
func (d Dialect) AddTimeline() string {
	return `INSERT INTO timeline (event_id, state, at, source) VALUES (` + d.Params(4) + `)
		ON CONFLICT (event_id, state, at) DO NOTHING`
}

// PutProject inserts or replaces a project (ProjectArgs).
func (d Dialect) PutProject() string {
	return upsertInto("projects", ProjectColumns, "id", strings.Split(d.Params(10), ", "))
}

// ProjectArgs are PutProject's arguments; no status is ProjectActive.
func (d Dialect) ProjectArgs(p Project) []any {
	status := p.Status
	if status == "" {
		status = ProjectActive
	}
	return []any{p.ID, p.Path, p.Name, p.WebURL, p.DefaultBranch, p.Archived, d.Time(p.LastActivityAt),
		status, p.StatusDetail, d.Time(p.StatusAt)}
}

// PutSyncState inserts or replaces a sync state (SyncArgs).
func (d Dialect) PutSyncState() string {
	return upsertInto("sync_state", SyncColumns, "project_id, kind", strings.Split(d.Params(9), ", "))
}

// SyncArgs are PutSyncState's arguments.
func (d Dialect) SyncArgs(s SyncState) []any {
	return []any{s.ProjectID, string(s.Kind), s.ProjectPath, d.Time(s.Cursor), d.Time(s.LastRunAt),
		d.Time(s.LastSuccess), s.Fetched, s.Stored, s.LastError}
}

// ImportAudit inserts an audit entry with its id (AuditArgs), unless the
// id is stored.
func (d Dialect) ImportAudit() string {
	return `INSERT INTO audit (` + AuditColumns + `) ` + d.Overriding +
		` VALUES (` + d.Params(9) + `) ON CONFLICT (id) DO NOTHING`
}

// AuditArgs are the arguments of ImportAudit, or without the id those of
// an append.
func (d Dialect) AuditArgs(e AuditEntry, withID bool) []any {
	args := []any{d.Time(e.Time), e.Method, e.Path, e.Status, int64(e.Duration), e.RateLimitRemaining, e.Job, e.Error}
	if withID {
		args = append([]any{e.ID}, args...)
	}
	return args
}

// PutDelivery inserts a new delivery (NewDeliveryArgs) unless its
// idempotency key is stored.
func (d Dialect) PutDelivery() string {
	ps := strings.Split(d.Params(8), ", ")
	ps[4] = d.JSON(ps[4])
	return `INSERT INTO deliveries
		(idempotency_key, event_type, event_uuid, webhook_uuid, headers, body, received_at, status)
		VALUES (` + strings.Join(ps, ", ") + `) ON CONFLICT (idempotency_key) DO NOTHING`
}

// NewDeliveryArgs are PutDelivery's arguments. A delivery without an
// idempotency key, or received at a time the backend cannot hold, is
// refused.
func (d Dialect) NewDeliveryArgs(dl Delivery) ([]any, error) {
	if dl.IdempotencyKey == "" {
		return nil, errors.New("no idempotency key")
	}
	if d.Check != nil {
		if err := d.Check("received_at", dl.ReceivedAt); err != nil {
			return nil, err
		}
	}
	headers, body, status, err := deliveryValues(dl)
	return []any{dl.IdempotencyKey, dl.EventType, dl.EventUUID, dl.WebhookUUID, headers, body,
		d.Time(dl.ReceivedAt), status}, err
}

// ImportDelivery inserts a delivery as given (DeliveryArgs), unless its id
// or idempotency key is stored.
func (d Dialect) ImportDelivery() string {
	ps := strings.Split(d.Params(12), ", ")
	ps[5] = d.JSON(ps[5])
	return `INSERT INTO deliveries (` + DeliveryColumns + `, body) ` + d.Overriding +
		` VALUES (` + strings.Join(ps, ", ") + `) ON CONFLICT DO NOTHING`
}

// DeliveryArgs are ImportDelivery's arguments.
func (d Dialect) DeliveryArgs(dl Delivery) ([]any, error) {
	headers, body, status, err := deliveryValues(dl)
	return []any{dl.ID, dl.IdempotencyKey, dl.EventType, dl.EventUUID, dl.WebhookUUID, headers,
		d.Time(dl.ReceivedAt), status, dl.Attempts, dl.LastError, d.Time(dl.ProcessedAt), body}, err
}

// deliveryValues are a delivery's columns as stored: headers a JSON object
// ({} for none), no status DeliveryPending, no body an empty one (the
// columns take no NULL).
func deliveryValues(dl Delivery) (headers string, body []byte, status string, err error) {
	headers = "{}"
	if len(dl.Headers) > 0 {
		b, err := json.Marshal(dl.Headers)
		if err != nil {
			return "", nil, "", fmt.Errorf("delivery headers: %w", err)
		}
		headers = string(b)
	}
	if status = dl.Status; status == "" {
		status = DeliveryPending
	}
	if body = dl.Body; body == nil {
		body = []byte{}
	}
	return headers, body, status, nil
}

// MarkDelivery records a processing attempt's outcome; processed_at is set
// to now for an outcome that is final and success, and cleared otherwise.
func (d Dialect) MarkDelivery(id int64, status, lastError string, now time.Time) (string, []any) {
	var processed time.Time
	if status == DeliveryProcessed || status == DeliveryStoredRaw {
		processed = now
	}
	return `UPDATE deliveries SET status = ` + d.Param(1) + `, last_error = ` + d.Param(2) +
			`, attempts = attempts + 1, processed_at = ` + d.Param(3) + ` WHERE id = ` + d.Param(4),
		[]any{status, lastError, d.Time(processed), id}
}

// Row is one row as database/sql and pgx both read it.
type Row interface {
	Scan(dest ...any) error
}

// Rows is a result set as database/sql and pgx both hand it out; the
// caller closes it.
type Rows interface {
	Row
	Next() bool
	Err() error
}

// Collect reads every row with scan.
func Collect[T any](rows Rows, scan func(Row) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Scanner reads the rows of the shared column lists. T is what a backend
// reads a time column into, From what turns that into a time: UTC, the
// zero time for the zero time.
type Scanner[T any] struct {
	From func(T) time.Time
}

// Event reads an EventColumns row, attributes decoded as the store hands
// them out (DecodeAttrs).
func (s Scanner[T]) Event(r Row) (change.Event, error) { return s.event(r, DecodeAttrs) }

// ExactEvent reads an EventColumns row, attribute numbers exactly as stored
// (ExactAttrs).
func (s Scanner[T]) ExactEvent(r Row) (change.Event, error) { return s.event(r, ExactAttrs) }

func (s Scanner[T]) event(r Row, decode func([]byte) (map[string]any, error)) (change.Event, error) {
	var (
		e                          change.Event
		kind, source               string
		created, updated, occurred T
		attrs                      []byte
	)
	err := r.Scan(&e.ID, &kind, &e.ProjectID, &e.ProjectPath, &e.Title, &e.State, &e.Author,
		&e.WebURL, &e.Ref, &e.SHA, &created, &updated, &occurred, &source, &attrs)
	if err != nil {
		return e, err
	}
	e.Kind, e.Source = change.Kind(kind), change.Source(source)
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = s.From(created), s.From(updated), s.From(occurred)
	if e.Attrs, err = decode(attrs); err != nil {
		return e, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return e, nil
}

// Stored reads a StoredColumns row for the upsert rule: attribute JSON
// as stored.
func (s Scanner[T]) Stored(r Row) (StoredEvent, error) {
	var (
		st                                   StoredEvent
		kind, source                         string
		created, updated, occurred, observed T
	)
	e := &st.Event
	err := r.Scan(&e.ID, &kind, &e.ProjectID, &e.ProjectPath, &e.Title, &e.State, &e.Author,
		&e.WebURL, &e.Ref, &e.SHA, &created, &updated, &occurred, &source, &st.AttrsJSON, &st.Hash, &observed)
	e.Kind, e.Source = change.Kind(kind), change.Source(source)
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = s.From(created), s.From(updated), s.From(occurred)
	e.ObservedAt = s.From(observed)
	return st, err
}

// Timeline reads a (event_id, state, at, source) row.
func (s Scanner[T]) Timeline(r Row) (change.TimelineEntry, error) {
	var (
		t      change.TimelineEntry
		at     T
		source string
	)
	err := r.Scan(&t.EventID, &t.State, &at, &source)
	t.At, t.Source = s.From(at), change.Source(source)
	return t, err
}

// Step reads a (state, at) row.
func (s Scanner[T]) Step(r Row) (Step, error) {
	var (
		st Step
		at T
	)
	err := r.Scan(&st.State, &at)
	st.At = s.From(at)
	return st, err
}

// Project reads a ProjectColumns row.
func (s Scanner[T]) Project(r Row) (Project, error) {
	var (
		p              Project
		last, statusAt T
	)
	err := r.Scan(&p.ID, &p.Path, &p.Name, &p.WebURL, &p.DefaultBranch, &p.Archived, &last,
		&p.Status, &p.StatusDetail, &statusAt)
	p.LastActivityAt, p.StatusAt = s.From(last), s.From(statusAt)
	return p, err
}

// SyncState reads a SyncColumns row.
func (s Scanner[T]) SyncState(r Row) (SyncState, error) {
	var (
		st                           SyncState
		kind                         string
		cursor, lastRun, lastSuccess T
	)
	err := r.Scan(&st.ProjectID, &kind, &st.ProjectPath, &cursor, &lastRun, &lastSuccess,
		&st.Fetched, &st.Stored, &st.LastError)
	st.Kind = change.Kind(kind)
	st.Cursor, st.LastRunAt, st.LastSuccess = s.From(cursor), s.From(lastRun), s.From(lastSuccess)
	return st, err
}

// Audit reads an AuditColumns row.
func (s Scanner[T]) Audit(r Row) (AuditEntry, error) {
	var (
		e   AuditEntry
		at  T
		dur int64
	)
	if err := r.Scan(&e.ID, &at, &e.Method, &e.Path, &e.Status, &dur, &e.RateLimitRemaining, &e.Job, &e.Error); err != nil {
		return e, err
	}
	e.Time, e.Duration = s.From(at), time.Duration(dur)
	e.DurationMS = float64(dur) / 1e6
	return e, nil
}

// Delivery reads a DeliveryColumns row.
func (s Scanner[T]) Delivery(r Row) (Delivery, error) { return s.delivery(r, false) }

// DeliveryWithBody reads a DeliveryColumns row followed by the body.
func (s Scanner[T]) DeliveryWithBody(r Row) (Delivery, error) { return s.delivery(r, true) }

func (s Scanner[T]) delivery(r Row, withBody bool) (Delivery, error) {
	var (
		d                   Delivery
		headers             []byte
		received, processed T
	)
	dest := []any{&d.ID, &d.IdempotencyKey, &d.EventType, &d.EventUUID, &d.WebhookUUID, &headers, &received,
		&d.Status, &d.Attempts, &d.LastError, &processed}
	if withBody {
		dest = append(dest, &d.Body)
	}
	if err := r.Scan(dest...); err != nil {
		return d, err
	}
	d.ReceivedAt, d.ProcessedAt = s.From(received), s.From(processed)
	if err := json.Unmarshal(headers, &d.Headers); err != nil {
		return d, fmt.Errorf("headers of delivery %d: %w", d.ID, err)
	}
	return d, nil
}
