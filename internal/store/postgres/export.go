package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// ImportEvents implements store.Store.
func (s *Store) ImportEvents(ctx context.Context, hs ...store.History) (store.ImportResult, error) {
	var res store.ImportResult
	if len(hs) == 0 {
		return res, nil
	}
	norm := make([]store.History, len(hs))
	ids := make([]string, 0, len(hs))
	for i, h := range hs {
		if err := dialect.CheckHistory(h); err != nil {
			return res, fmt.Errorf("postgres: import: %w", err)
		}
		norm[i].Event = normalize(h.Event)
		norm[i].Timeline = make([]change.TimelineEntry, len(h.Timeline))
		for j, t := range h.Timeline {
			t.At = ts(t.At)
			norm[i].Timeline[j] = t
		}
		ids = append(ids, h.Event.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		res = store.ImportResult{}
		// The same per-id locks as Upsert, so an import and an Upsert of
		// one id do not interleave.
		if err := lockIDs(ctx, tx, ids); err != nil {
			return err
		}
		var (
			b     pgx.Batch
			kind  []int // per queued statement: the index in norm of an event row, or -1
			attrs = make([][]byte, len(norm))
		)
		for i, h := range norm {
			e := h.Event
			a, hash, err := store.ImportRow(e)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			attrs[i] = a
			b.Queue(dialect.PutEvent(true), dialect.EventArgs(e, a, hash)...)
			kind = append(kind, i)
			for _, t := range h.Timeline {
				b.Queue(dialect.AddTimeline(), e.ID, t.State, t.At, string(t.Source))
				kind = append(kind, -1)
			}
		}
		// The facts of the events whose rows were written, once the batch
		// has said which.
		var facts pgx.Batch
		br := tx.SendBatch(ctx, &b)
		for _, i := range kind {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			switch {
			case tag.RowsAffected() == 0:
			case i >= 0:
				res.Events++
				if err := queueFacts(&facts, norm[i].Event, attrs[i]); err != nil {
					br.Close()
					return fmt.Errorf("event %s: %w", norm[i].Event.ID, err)
				}
			default:
				res.Timeline++
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
		return tx.SendBatch(ctx, &facts).Close()
	})
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("postgres: import: %w", err)
	}
	return res, nil
}

// insert runs stmt, which inserts rows of table with their ids, once per
// argument list in one transaction, then moves the table's identity
// sequence past the highest id, so later inserts never reuse one.
func (s *Store) insert(ctx context.Context, table, stmt string, args ...[]any) (int, error) {
	inserted := 0
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var err error
		if inserted, err = execBatch(ctx, tx, stmt, args); err != nil {
			return err
		}
		return bumpIdentity(ctx, tx, table, inserted)
	})
	return inserted, err
}

// bumpIdentity moves table's id sequence past its highest id, after rows
// were inserted with explicit ids.
func bumpIdentity(ctx context.Context, tx pgx.Tx, table string, inserted int) error {
	if inserted == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+table+`', 'id'),
		GREATEST((SELECT MAX(id) FROM `+table+`), nextval(pg_get_serial_sequence('`+table+`', 'id')) - 1, 1))`)
	return err
}
