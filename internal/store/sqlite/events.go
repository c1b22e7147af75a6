package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// dialect is how this backend writes the statements package store shares.
var dialect = store.Dialect{
	// Unix nanoseconds hold store.MinTime..MaxTime (see
	// migrations/00001_init.sql).
	Check: store.CheckTime,
	// Numbered, so that a condition can name one parameter twice.
	Param: func(n int) string { return "?" + strconv.Itoa(n) },
	Time:  func(t time.Time) any { return nanos(t) },
	// substr and length count characters alike.
	HasPrefix: func(column, p string) string { return "substr(" + column + ", 1, length(" + p + ")) = " + p },
	JSON:      func(p string) string { return p },
	Position:  func(s, sub string) string { return "instr(" + s + ", " + sub + ")" },
	JobDays:   true,
}

// scan reads the shared columns, times from unix nanoseconds.
var scan = store.Scanner[int64]{From: fromNanos}

// exactScan reads timeline steps for the timeline rule, where an instant at
// the Unix epoch must stay distinct from the zero time.
var exactScan = store.Scanner[int64]{From: func(n int64) time.Time { return time.Unix(0, n).UTC() }}

// runQuery runs a statement on q (the pool or a transaction) and hands
// its rows to read.
func runQuery(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, stmt string, args []any, read func(store.Rows) error) error {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return read(rows)
}

func (s *Store) query(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
	return runQuery(ctx, s.db, stmt, args, read)
}

// snapshot runs fn's statements in one read transaction, so they see one
// moment even while an Upsert commits.
func (s *Store) snapshot(ctx context.Context, fn func(store.Querier) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
		return runQuery(ctx, tx, stmt, args, read)
	})
}

// exec runs stmt once per argument list, prepared once, in one write
// transaction, and says how many rows it changed.
func (s *Store) exec(ctx context.Context, stmt string, args ...[]any) (int, error) {
	total := 0
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		total, err = execTx(ctx, tx, stmt, args)
		return err
	})
	return total, err
}

// execTx runs stmt in tx once per argument list, prepared once, and says
// how many rows it changed.
func execTx(ctx context.Context, tx *sql.Tx, stmt string, args [][]any) (int, error) {
	st, err := tx.PrepareContext(ctx, stmt)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	total := 0
	for _, a := range args {
		n, err := affected(st.ExecContext(ctx, a...))
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// tx runs fn in one write transaction (store.SQL.Tx): BEGIN IMMEDIATE
// holds the write lock from the start, so what fn reads stays as read
// until it commits.
func (s *Store) tx(ctx context.Context, fn func(store.Querier, store.Execer) error) error {
	return s.withTx(ctx, func(tx *sql.Tx) error {
		return fn(func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
			return runQuery(ctx, tx, stmt, args, read)
		}, func(ctx context.Context, stmt string, args ...[]any) (int, error) {
			return execTx(ctx, tx, stmt, args)
		})
	})
}

// affected is how many rows a statement changed.
func affected(r sql.Result, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}

// Upsert implements store.Store. Events are applied in order, so a repeated
// id later in the call sees the earlier one.
func (s *Store) Upsert(ctx context.Context, events ...change.Event) (store.UpsertResult, error) {
	var res store.UpsertResult
	if len(events) == 0 {
		return res, nil
	}
	// All of them first: a call with one bad event stores none.
	for _, e := range events {
		if err := dialect.CheckEvent(e); err != nil {
			return res, fmt.Errorf("sqlite: upsert: %w", err)
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		u, err := prepareUpserter(ctx, tx)
		if err != nil {
			return err
		}
		defer u.close()
		res, err = u.all(ctx, events)
		return err
	})
	if err != nil {
		return store.UpsertResult{}, fmt.Errorf("sqlite: upsert: %w", err)
	}
	return res, nil
}

// upserter holds one transaction's prepared statements, so a batch compiles
// each statement once.
type upserter struct {
	sel, put, steps, add, drop *sql.Stmt
	facts                      *factWriter
}

func prepareUpserter(ctx context.Context, tx *sql.Tx) (*upserter, error) {
	u := &upserter{facts: newFactWriter(tx)}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&u.sel, `SELECT ` + store.StoredColumns + ` FROM events WHERE id = ?1`},
		{&u.put, dialect.PutEvent(false)},
		{&u.steps, `SELECT event_id, state, at, source FROM timeline WHERE event_id = ?1 ORDER BY seq`},
		{&u.add, dialect.AddTimeline()},
		{&u.drop, dialect.DropTimeline()},
	} {
		st, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			u.close()
			return nil, err
		}
		*p.st = st
	}
	return u, nil
}

func (u *upserter) close() {
	for _, st := range []*sql.Stmt{u.sel, u.put, u.steps, u.add, u.drop} {
		if st != nil {
			st.Close()
		}
	}
	u.facts.close()
}

// factWriter writes the facts of events (store.FactWrites) in one
// transaction, each statement prepared once.
type factWriter struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func newFactWriter(tx *sql.Tx) *factWriter {
	return &factWriter{tx: tx, stmts: map[string]*sql.Stmt{}}
}

// write brings the facts of e, written with attrs, up to date.
func (f *factWriter) write(ctx context.Context, e change.Event, attrs []byte) error {
	ws, err := dialect.FactWrites(e, attrs)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if err := f.exec(ctx, w.SQL, w.Args...); err != nil {
			return err
		}
	}
	return nil
}

// exec runs stmt, prepared on its first use.
func (f *factWriter) exec(ctx context.Context, stmt string, args ...any) error {
	st := f.stmts[stmt]
	if st == nil {
		var err error
		if st, err = f.tx.PrepareContext(ctx, stmt); err != nil {
			return err
		}
		f.stmts[stmt] = st
	}
	_, err := st.ExecContext(ctx, args...)
	return err
}

func (f *factWriter) close() {
	for _, st := range f.stmts {
		st.Close()
	}
}

// all upserts events in order and sums what was done.
func (u *upserter) all(ctx context.Context, events []change.Event) (store.UpsertResult, error) {
	var res store.UpsertResult
	for _, e := range events {
		// The driver only notices a cancelled context between statements
		// of its own; checking per event bounds the work done for a
		// caller that has gone.
		if err := ctx.Err(); err != nil {
			return res, err
		}
		r, err := u.upsert(ctx, e)
		if err != nil {
			return res, fmt.Errorf("event %s: %w", e.ID, err)
		}
		res = res.Add(r)
	}
	return res, nil
}

// upsert reads the stored version of e, and writes what store.Decide and
// store.Timeline say.
func (u *upserter) upsert(ctx context.Context, e change.Event) (store.UpsertResult, error) {
	var stored *store.StoredEvent
	switch old, err := scan.Stored(u.sel.QueryRowContext(ctx, e.ID)); {
	case err == nil:
		stored = &old
	case !errors.Is(err, sql.ErrNoRows):
		return store.UpsertResult{}, err
	}
	d, err := store.Decide(e, stored)
	if err != nil {
		return store.UpsertResult{}, err
	}
	if d.Write {
		if _, err := u.put.ExecContext(ctx, dialect.EventArgs(d.Event, d.Attrs, d.Hash)...); err != nil {
			return store.UpsertResult{}, err
		}
		if err := u.facts.write(ctx, d.Event, d.Attrs); err != nil {
			return store.UpsertResult{}, err
		}
	}
	if len(d.Transitions) == 0 && d.Authority == nil {
		return d.Result, nil
	}
	var tl []store.Step
	if stored != nil {
		rows, err := u.steps.QueryContext(ctx, e.ID)
		if err != nil {
			return store.UpsertResult{}, err
		}
		entries, err := store.Collect(rows, exactScan.Timeline)
		rows.Close()
		if err != nil {
			return store.UpsertResult{}, err
		}
		tl = make([]store.Step, len(entries))
		for i, t := range entries {
			tl[i] = store.Step{State: t.State, At: t.At, Source: t.Source}
		}
	}
	_, drop, add := store.Timeline(tl, d)
	for _, s := range drop {
		if _, err := u.drop.ExecContext(ctx, e.ID, s.State, s.At.UnixNano()); err != nil {
			return store.UpsertResult{}, err
		}
	}
	for _, t := range add {
		if _, err := u.add.ExecContext(ctx, e.ID, t.State, nanos(t.At), string(e.Source)); err != nil {
			return store.UpsertResult{}, err
		}
	}
	return d.Result, nil
}

// Unverified says how many of projectID's events of kind a webhook stored
// that no poll has read since, and the earliest of their created_at and
// updated_at (zero for none or unknown): a poll that walks from there reads
// them again, and overrules what the webhook said (the poller uses it).
func (s *Store) Unverified(ctx context.Context, projectID int64, kind change.Kind) (int, time.Time, error) {
	var (
		n        int
		earliest int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT count(*), coalesce(min(min(created_at, updated_at)), 0) FROM events
		WHERE project_id = ?1 AND kind = ?2 AND source = 'webhook'`, projectID, string(kind)).Scan(&n, &earliest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlite: unverified: %w", err)
	}
	return n, fromNanos(earliest), nil
}
