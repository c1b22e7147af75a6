package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// dialect is how this backend writes the statements package store shares.
var dialect = store.Dialect{
	// One range for every backend, though timestamptz holds more.
	Check:      store.CheckTime,
	Param:      func(n int) string { return "$" + strconv.Itoa(n) },
	Time:       func(t time.Time) any { return ts(t) },
	HasPrefix:  func(column, p string) string { return "starts_with(" + column + ", " + p + ")" },
	JSON:       func(p string) string { return p + "::jsonb" },
	Overriding: "OVERRIDING SYSTEM VALUE",
	Position:   func(s, sub string) string { return "strpos(" + s + ", " + sub + ")" },
	ForUpdate:  " FOR UPDATE",
}

// scan reads the shared columns, times from timestamptz.
var scan = store.Scanner[pgtype.Timestamptz]{From: fromTS}

// runQuery runs a statement on q (the pool or a transaction) and hands
// its rows to read.
func runQuery(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, stmt string, args []any, read func(store.Rows) error) error {
	rows, err := q.Query(ctx, stmt, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return read(rows)
}

func (s *Store) query(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
	return runQuery(ctx, s.pool, stmt, args, read)
}

// snapshot runs fn's statements in one repeatable-read transaction, so
// they see one moment even while an Upsert commits.
func (s *Store) snapshot(ctx context.Context, fn func(store.Querier) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	return fn(func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
		return runQuery(ctx, tx, stmt, args, read)
	})
}

// exec runs stmt once per argument list, as one batch in one transaction,
// and says how many rows it changed.
func (s *Store) exec(ctx context.Context, stmt string, args ...[]any) (int, error) {
	n := 0
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = execBatch(ctx, tx, stmt, args)
		return err
	})
	return n, err
}

// tx runs fn in one transaction (store.SQL.Tx), retried as withTx
// retries.
func (s *Store) tx(ctx context.Context, fn func(store.Querier, store.Execer) error) error {
	return s.withTx(ctx, func(tx pgx.Tx) error {
		return fn(func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
			return runQuery(ctx, tx, stmt, args, read)
		}, func(ctx context.Context, stmt string, args ...[]any) (int, error) {
			return execBatch(ctx, tx, stmt, args)
		})
	})
}

// execBatch queues stmt once per argument list and sums the rows changed.
func execBatch(ctx context.Context, tx pgx.Tx, stmt string, args [][]any) (int, error) {
	var b pgx.Batch
	for _, a := range args {
		b.Queue(stmt, a...)
	}
	br := tx.SendBatch(ctx, &b)
	total := 0
	for range args {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return 0, err
		}
		total += int(tag.RowsAffected())
	}
	return total, br.Close()
}

// upsertLockClass is the first key of the transaction-level advisory locks
// Upsert takes per id (the second is hashtext(id)).
const upsertLockClass = 0x6c74 // "lt"

// lockIDs serialises Upserts and imports touching the same ids: each
// decides from what it read, so two must not interleave on one id. The
// locks are taken in one consistent order (by key), so overlapping calls
// cannot deadlock. ids must be sorted and unique.
func lockIDs(ctx context.Context, tx pgx.Tx, ids []string) error {
	_, err := tx.Exec(ctx, `SELECT count(pg_advisory_xact_lock($1, k)) FROM (
			SELECT DISTINCT hashtext(id) AS k FROM unnest($2::text[]) AS id ORDER BY k) AS keys`,
		upsertLockClass, ids)
	return err
}

// normalize truncates e's times as they will be stored, so that comparing and
// hashing see what a later read returns.
func normalize(e change.Event) change.Event {
	e.CreatedAt, e.UpdatedAt, e.OccurredAt, e.ObservedAt = ts(e.CreatedAt), ts(e.UpdatedAt), ts(e.OccurredAt), ts(e.ObservedAt)
	if len(e.Transitions) > 0 {
		t := make([]change.Transition, len(e.Transitions))
		for i, tr := range e.Transitions {
			t[i] = change.Transition{State: tr.State, At: ts(tr.At)}
		}
		e.Transitions = t
	}
	return e
}

// Upsert implements store.Store. Events are applied in order, so a repeated
// id later in the call sees the earlier one.
func (s *Store) Upsert(ctx context.Context, events ...change.Event) (store.UpsertResult, error) {
	var res store.UpsertResult
	if len(events) == 0 {
		return res, nil
	}
	// All of them first: a call with one bad event stores none.
	norm := make([]change.Event, len(events))
	ids := make([]string, 0, len(events))
	for i, e := range events {
		if err := dialect.CheckEvent(e); err != nil {
			return res, fmt.Errorf("postgres: upsert: %w", err)
		}
		norm[i] = normalize(e)
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		res = store.UpsertResult{}
		if err := lockIDs(ctx, tx, ids); err != nil {
			return err
		}
		b, err := load(ctx, tx, ids)
		if err != nil {
			return err
		}
		for _, e := range norm {
			r, err := b.upsert(e)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			res = res.Add(r)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return tx.SendBatch(ctx, &b.batch).Close()
	})
	if err != nil {
		return store.UpsertResult{}, fmt.Errorf("postgres: upsert: %w", err)
	}
	return res, nil
}

// upsertBatch decides a call's writes in memory, from the stored rows of
// its ids read up front, and queues them as one pipelined batch: two round
// trips per call instead of several per event. The advisory locks make the
// rows read stay current until the commit.
type upsertBatch struct {
	events   map[string]*store.StoredEvent
	timeline map[string][]store.Step // each id's in the order stored (seq)
	batch    pgx.Batch
}

func load(ctx context.Context, tx pgx.Tx, ids []string) (*upsertBatch, error) {
	b := &upsertBatch{events: make(map[string]*store.StoredEvent, len(ids)), timeline: make(map[string][]store.Step, len(ids))}
	err := runQuery(ctx, tx, `SELECT `+store.StoredColumns+` FROM events WHERE id = ANY($1::text[])`,
		[]any{ids}, func(rows store.Rows) error {
			for rows.Next() {
				st, err := scan.Stored(rows)
				if err != nil {
					return err
				}
				b.events[st.ID] = &st
			}
			return rows.Err()
		})
	if err != nil {
		return nil, err
	}
	err = runQuery(ctx, tx, `SELECT event_id, state, at, source FROM timeline WHERE event_id = ANY($1::text[]) ORDER BY seq`,
		[]any{ids}, func(rows store.Rows) error {
			tl, err := store.Collect(rows, scan.Timeline)
			for _, t := range tl {
				b.timeline[t.EventID] = append(b.timeline[t.EventID], store.Step{State: t.State, At: t.At, Source: t.Source})
			}
			return err
		})
	return b, err
}

// upsert queues what store.Decide and store.Timeline say for e, and keeps
// what it queued as stored for the events after it.
func (b *upsertBatch) upsert(e change.Event) (store.UpsertResult, error) {
	d, err := store.Decide(e, b.events[e.ID])
	if err != nil {
		return store.UpsertResult{}, err
	}
	if d.Write {
		b.batch.Queue(dialect.PutEvent(false), dialect.EventArgs(d.Event, d.Attrs, d.Hash)...)
		if err := queueFacts(&b.batch, d.Event, d.Attrs); err != nil {
			return store.UpsertResult{}, err
		}
		row := d.Event
		row.Attrs, row.Transitions = nil, nil
		b.events[e.ID] = &store.StoredEvent{Event: row, AttrsJSON: d.Attrs, Hash: d.Hash}
	}
	var drop []store.Step
	var add []change.Transition
	b.timeline[e.ID], drop, add = store.Timeline(b.timeline[e.ID], d)
	for _, s := range drop {
		b.batch.Queue(dialect.DropTimeline(), e.ID, s.State, ts(s.At))
	}
	for _, t := range add {
		b.batch.Queue(dialect.AddTimeline(), e.ID, t.State, ts(t.At), string(e.Source))
	}
	return d.Result, nil
}

// queueFacts queues the statements that bring the facts of e, written
// with attrs, up to date (store.FactWrites).
func queueFacts(b *pgx.Batch, e change.Event, attrs []byte) error {
	ws, err := dialect.FactWrites(e, attrs)
	for _, w := range ws {
		b.Queue(w.SQL, w.Args...)
	}
	return err
}

// Unverified says how many of projectID's events of kind a webhook stored
// that no poll has read since, and the earliest of their created_at and
// updated_at (zero for none or unknown): a poll that walks from there reads
// them again, and overrules what the webhook said (the poller uses it).
func (s *Store) Unverified(ctx context.Context, projectID int64, kind change.Kind) (int, time.Time, error) {
	var (
		n        int
		earliest pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(least(created_at, updated_at)) FROM events
		WHERE project_id = $1 AND kind = $2 AND source = 'webhook'`, projectID, string(kind)).Scan(&n, &earliest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres: unverified: %w", err)
	}
	return n, fromTS(earliest), nil
}
