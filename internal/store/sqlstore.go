package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// Querier runs a statement and hands its rows to read, closing them after.
type Querier func(ctx context.Context, stmt string, args []any, read func(Rows) error) error

// SQL implements, once for the SQL backends, the methods that are one
// statement or one snapshot of reads: a backend embeds it with its dialect
// and the means to run statements, and writes in its own way only what it
// does differently (the upsert's reads and writes, the imports, appends).
type SQL[T any] struct {
	Name    string // the backend, as its errors name it
	Dialect Dialect
	Scan    Scanner[T]
	Query   Querier
	// FactQuery, when set, runs the fact reads (facts) instead of Query:
	// a backend's faster way for rows scanned only into *string, *int64,
	// *int, *float64 and sql.Scanner.
	FactQuery Querier
	// conn is the connection whose facts the MetricsStore methods read
	// ("" every connection's): FactsOf sets it.
	conn string
	// Snapshot runs fn with a Querier whose statements all read one
	// moment of the database.
	Snapshot func(ctx context.Context, fn func(Querier) error) error
	// Exec runs statements that write, each with one of args, in one
	// transaction, and says how many rows they changed.
	Exec func(ctx context.Context, stmt string, args ...[]any) (int, error)
	// Insert is Exec for statements that insert rows of table with their
	// ids; a backend that numbers rows from a sequence moves it past them.
	Insert func(ctx context.Context, table, stmt string, args ...[]any) (int, error)
	// Tx runs fn in one write transaction: what it reads with q and
	// writes with exec commits if it returns nil, and nothing of it
	// otherwise. fn may run again when the backend retries the
	// transaction (a serialization failure).
	Tx func(ctx context.Context, fn func(q Querier, exec Execer) error) error
}

// Execer runs a statement that writes, once for each of args, and says
// how many rows it changed.
type Execer func(ctx context.Context, stmt string, args ...[]any) (int, error)

func rowsOf[R any](ctx context.Context, q Querier, stmt string, args []any, scan func(Row) (R, error)) ([]R, error) {
	var out []R
	err := q(ctx, stmt, args, func(rows Rows) error {
		var err error
		out, err = Collect(rows, scan)
		return err
	})
	return out, err
}

func (s SQL[T]) errorf(format string, a ...any) error {
	return fmt.Errorf(s.Name+": "+format, a...)
}

// check refuses times the backend cannot hold.
func (s SQL[T]) check(names []string, ts ...time.Time) error {
	if s.Dialect.Check == nil {
		return nil
	}
	for i, t := range ts {
		if err := s.Dialect.Check(names[i], t); err != nil {
			return err
		}
	}
	return nil
}

// Get implements EventStore.
func (s SQL[T]) Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error) {
	var (
		e  []change.Event
		tl []change.TimelineEntry
	)
	p := s.Dialect.Param(1)
	err := s.Snapshot(ctx, func(q Querier) error {
		var err error
		e, err = rowsOf(ctx, q, `SELECT `+EventColumns+` FROM events WHERE id = `+p, []any{id}, s.Scan.Event)
		if err != nil || len(e) == 0 {
			return err
		}
		tl, err = rowsOf(ctx, q, `SELECT event_id, state, at, source FROM timeline WHERE event_id = `+p+` ORDER BY at, seq`,
			[]any{id}, s.Scan.Timeline)
		return err
	})
	switch {
	case err != nil:
		return change.Event{}, nil, s.errorf("get %s: %w", id, err)
	case len(e) == 0:
		return change.Event{}, nil, s.errorf("event %s: %w", id, ErrNotFound)
	}
	return e[0], tl, nil
}

// List implements EventStore.
func (s SQL[T]) List(ctx context.Context, f Filter) (Page, error) {
	if err := s.check([]string{"since", "until"}, f.Since, f.Until); err != nil {
		return Page{}, s.errorf("list: %w", err)
	}
	return list(ctx, s, "list", s.Dialect.ListEvents, f, s.Scan.Event, Listing.EventPage)
}

// list runs a listing's statement, built by build from f, and makes its
// page of the rows.
func list[T, F, R, P any](ctx context.Context, s SQL[T], what string, build func(F) (Listing, error), f F,
	scan func(Row) (R, error), page func(Listing, []R) P) (P, error) {
	var none P
	l, err := build(f)
	if err != nil {
		return none, s.errorf("%s: %w", what, err)
	}
	rows, err := rowsOf(ctx, s.Query, l.SQL, l.Args, scan)
	if err != nil {
		return none, s.errorf("%s: %w", what, err)
	}
	return page(l, rows), nil
}

// Count implements EventStore.
func (s SQL[T]) Count(ctx context.Context, kind change.Kind) (int, error) {
	q := s.Dialect.Query()
	if kind != "" {
		q.Where("kind = ?", string(kind))
	}
	n, err := rowsOf(ctx, s.Query, `SELECT COUNT(*) FROM events`+q.WhereSQL(), q.Args(), func(r Row) (int, error) {
		var n int
		return n, r.Scan(&n)
	})
	if err != nil {
		return 0, s.errorf("count %q: %w", kind, err)
	}
	return n[0], nil
}

// VersionsByPrefix implements EventStore.
func (s SQL[T]) VersionsByPrefix(ctx context.Context, prefix string) (map[string]time.Time, error) {
	q := s.Dialect.Query()
	// A range on the primary key (byte order) instead of LIKE: ids hold %
	// and _.
	q.Where("id >= ? AND id < ? AND source = 'poll'", prefix, prefix+"\U0010FFFF")
	out := map[string]time.Time{}
	return out, s.ReadVersions(ctx, `SELECT id, updated_at FROM events`+q.WhereSQL(), q.Args(), out)
}

// ReadVersions adds the (id, updated_at) rows of stmt to out.
func (s SQL[T]) ReadVersions(ctx context.Context, stmt string, args []any, out map[string]time.Time) error {
	err := s.Query(ctx, stmt, args, func(rows Rows) error {
		for rows.Next() {
			var (
				id string
				at T
			)
			if err := rows.Scan(&id, &at); err != nil {
				return err
			}
			out[id] = s.Scan.From(at)
		}
		return rows.Err()
	})
	if err != nil {
		return s.errorf("versions: %w", err)
	}
	return nil
}

// PutProjects implements ProjectStore.
func (s SQL[T]) PutProjects(ctx context.Context, ps ...Project) error {
	args := make([][]any, len(ps))
	for i, p := range ps {
		if err := s.check([]string{"last_activity_at", "status_at"}, p.LastActivityAt, p.StatusAt); err != nil {
			return s.errorf("put project %d: %w", p.ID, err)
		}
		args[i] = s.Dialect.ProjectArgs(p)
	}
	if len(ps) == 0 {
		return nil
	}
	if _, err := s.Exec(ctx, s.Dialect.PutProject(), args...); err != nil {
		return s.errorf("put projects: %w", err)
	}
	return nil
}

// Projects implements ProjectStore.
func (s SQL[T]) Projects(ctx context.Context) ([]Project, error) {
	ps, err := rowsOf(ctx, s.Query, `SELECT `+ProjectColumns+` FROM projects ORDER BY path, id`, nil, s.Scan.Project)
	if err != nil {
		return nil, s.errorf("projects: %w", err)
	}
	return ps, nil
}

// SyncState implements ProjectStore.
func (s SQL[T]) SyncState(ctx context.Context, projectID int64, kind change.Kind) (SyncState, error) {
	q := s.Dialect.Query()
	q.Where("project_id = ? AND kind = ?", projectID, string(kind))
	st, err := rowsOf(ctx, s.Query, `SELECT `+SyncColumns+` FROM sync_state`+q.WhereSQL(), q.Args(), s.Scan.SyncState)
	switch {
	case err != nil:
		return SyncState{}, s.errorf("sync state %d/%s: %w", projectID, kind, err)
	case len(st) == 0:
		// Never synced: the zero cursor tells the poller to backfill.
		return SyncState{ProjectID: projectID, Kind: kind}, nil
	}
	return st[0], nil
}

// PutSyncState implements ProjectStore.
func (s SQL[T]) PutSyncState(ctx context.Context, st SyncState) error {
	err := s.check([]string{"cursor", "last_run_at", "last_success_at"}, st.Cursor, st.LastRunAt, st.LastSuccess)
	if err == nil {
		_, err = s.Exec(ctx, s.Dialect.PutSyncState(), s.Dialect.SyncArgs(st))
	}
	if err != nil {
		return s.errorf("put sync state %d/%s: %w", st.ProjectID, st.Kind, err)
	}
	return nil
}

// SyncStates implements ProjectStore.
func (s SQL[T]) SyncStates(ctx context.Context) ([]SyncState, error) {
	out, err := rowsOf(ctx, s.Query, `SELECT `+SyncColumns+` FROM sync_state ORDER BY project_path, kind, project_id`, nil, s.Scan.SyncState)
	if err != nil {
		return nil, s.errorf("sync states: %w", err)
	}
	return out, nil
}

// AppendAudit implements AuditStore.
func (s SQL[T]) AppendAudit(ctx context.Context, entries ...AuditEntry) error {
	args := make([][]any, len(entries))
	for i, e := range entries {
		if err := s.check([]string{"time"}, e.Time); err != nil {
			return s.errorf("append audit: %w", err)
		}
		args[i] = s.Dialect.AuditArgs(e, false)
	}
	if len(entries) == 0 {
		return nil
	}
	_, err := s.Exec(ctx, `INSERT INTO audit (at, method, path, status, duration_ns, rate_limit_remaining, job, error)
		VALUES (`+s.Dialect.Params(8)+`)`, args...)
	if err != nil {
		return s.errorf("append audit: %w", err)
	}
	return nil
}

// ListAudit implements AuditStore.
func (s SQL[T]) ListAudit(ctx context.Context, f AuditFilter) (AuditPage, error) {
	return list(ctx, s, "list audit", s.Dialect.ListAudit, f, s.Scan.Audit, Listing.AuditPage)
}

// PruneAudit implements AuditStore.
func (s SQL[T]) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	n, err := s.Exec(ctx, `DELETE FROM audit WHERE at < `+s.Dialect.Param(1), []any{s.Dialect.Time(before)})
	if err != nil {
		return 0, s.errorf("prune audit: %w", err)
	}
	return n, nil
}

// Delivery implements DeliveryStore.
func (s SQL[T]) Delivery(ctx context.Context, id int64) (Delivery, error) {
	ds, err := rowsOf(ctx, s.Query, `SELECT `+DeliveryColumns+`, body FROM deliveries WHERE id = `+s.Dialect.Param(1),
		[]any{id}, s.Scan.DeliveryWithBody)
	switch {
	case err != nil:
		return Delivery{}, s.errorf("delivery %d: %w", id, err)
	case len(ds) == 0:
		return Delivery{}, s.errorf("delivery %d: %w", id, ErrNotFound)
	}
	return ds[0], nil
}

// ListDeliveries implements DeliveryStore.
func (s SQL[T]) ListDeliveries(ctx context.Context, f DeliveryFilter) (DeliveryPage, error) {
	return list(ctx, s, "list deliveries", s.Dialect.ListDeliveries, f, s.Scan.Delivery, Listing.DeliveryPage)
}

// MarkDelivery implements DeliveryStore.
func (s SQL[T]) MarkDelivery(ctx context.Context, id int64, status, lastError string) error {
	q, args := s.Dialect.MarkDelivery(id, status, lastError, time.Now())
	n, err := s.Exec(ctx, q, args)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return s.errorf("mark delivery %d: %w", id, err)
	}
	return nil
}

// ExportEvents implements PortStore.
func (s SQL[T]) ExportEvents(ctx context.Context, after string, limit int) ([]History, error) {
	lim, err := PageLimit(limit)
	if err != nil {
		return nil, s.errorf("export events: %w", err)
	}
	var (
		es []change.Event
		tl []change.TimelineEntry
	)
	p1, p2 := s.Dialect.Param(1), s.Dialect.Param(2)
	// One snapshot: the events and their timelines of one moment.
	err = s.Snapshot(ctx, func(q Querier) error {
		var err error
		es, err = rowsOf(ctx, q, `SELECT `+EventColumns+` FROM events WHERE id > `+p1+` ORDER BY id LIMIT `+p2,
			[]any{after, lim}, s.Scan.ExactEvent)
		if err != nil || len(es) == 0 {
			return err
		}
		tl, err = rowsOf(ctx, q, `SELECT event_id, state, at, source FROM timeline
			WHERE event_id > `+p1+` AND event_id <= `+p2+` ORDER BY event_id, at, seq`, []any{after, es[len(es)-1].ID}, s.Scan.Timeline)
		return err
	})
	if err != nil {
		return nil, s.errorf("export events: %w", err)
	}
	if len(es) == 0 {
		return nil, nil
	}
	return Histories(es, tl), nil
}

// ExportAudit implements PortStore.
func (s SQL[T]) ExportAudit(ctx context.Context, after int64, limit int) ([]AuditEntry, error) {
	return exportByID(ctx, s, "audit", AuditColumns, after, limit, s.Scan.Audit)
}

// ExportDeliveries implements PortStore.
func (s SQL[T]) ExportDeliveries(ctx context.Context, after int64, limit int) ([]Delivery, error) {
	return exportByID(ctx, s, "deliveries", DeliveryColumns+", body", after, limit, s.Scan.DeliveryWithBody)
}

func exportByID[T, R any](ctx context.Context, s SQL[T], table, columns string, after int64, limit int, scan func(Row) (R, error)) ([]R, error) {
	lim, err := PageLimit(limit)
	if err != nil {
		return nil, s.errorf("export %s: %w", table, err)
	}
	out, err := rowsOf(ctx, s.Query, `SELECT `+columns+` FROM `+table+` WHERE id > `+s.Dialect.Param(1)+
		` ORDER BY id LIMIT `+s.Dialect.Param(2), []any{after, lim}, scan)
	if err != nil {
		return nil, s.errorf("export %s: %w", table, err)
	}
	return out, nil
}

// ImportAudit implements PortStore.
func (s SQL[T]) ImportAudit(ctx context.Context, entries ...AuditEntry) (int, error) {
	args := make([][]any, len(entries))
	for i, e := range entries {
		if e.ID <= 0 {
			return 0, s.errorf("import audit: entry without id")
		}
		if err := s.check([]string{"time"}, e.Time); err != nil {
			return 0, s.errorf("import audit: %w", err)
		}
		args[i] = s.Dialect.AuditArgs(e, true)
	}
	n, err := s.Insert(ctx, "audit", s.Dialect.ImportAudit(), args...)
	if err != nil {
		return 0, s.errorf("import audit: %w", err)
	}
	return n, nil
}

// CheckImportedDelivery refuses what no backend's ImportDeliveries
// stores: a delivery without its id or idempotency key.
func CheckImportedDelivery(d Delivery) error {
	switch {
	case d.ID <= 0:
		return errors.New("delivery without id")
	case d.IdempotencyKey == "":
		return fmt.Errorf("delivery %d has no idempotency key", d.ID)
	}
	return nil
}

// ImportDeliveries implements PortStore.
func (s SQL[T]) ImportDeliveries(ctx context.Context, ds ...Delivery) (int, error) {
	args := make([][]any, len(ds))
	for i, d := range ds {
		if err := CheckImportedDelivery(d); err != nil {
			return 0, s.errorf("import deliveries: %w", err)
		}
		err := s.check([]string{"received_at", "processed_at"}, d.ReceivedAt, d.ProcessedAt)
		if err == nil {
			args[i], err = s.Dialect.DeliveryArgs(d)
		}
		if err != nil {
			return 0, s.errorf("import deliveries: delivery %d: %w", d.ID, err)
		}
	}
	n, err := s.Insert(ctx, "deliveries", s.Dialect.ImportDelivery(), args...)
	if err != nil {
		return 0, s.errorf("import deliveries: %w", err)
	}
	return n, nil
}

// Ping implements Store: the events table can be read.
func (s SQL[T]) Ping(ctx context.Context) error {
	if err := s.Query(ctx, `SELECT 1 FROM events LIMIT 1`, nil, func(rows Rows) error { return rows.Err() }); err != nil {
		return s.errorf("ping: %w", err)
	}
	return nil
}
