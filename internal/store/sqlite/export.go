package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/labtrail/labtrail/internal/store"
)

// ImportEvents implements store.Store.
func (s *Store) ImportEvents(ctx context.Context, hs ...store.History) (store.ImportResult, error) {
	var res store.ImportResult
	for _, h := range hs {
		if err := dialect.CheckHistory(h); err != nil {
			return res, fmt.Errorf("sqlite: import: %w", err)
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		res = store.ImportResult{}
		put, err := tx.PrepareContext(ctx, dialect.PutEvent(true))
		if err != nil {
			return err
		}
		defer put.Close()
		add, err := tx.PrepareContext(ctx, dialect.AddTimeline())
		if err != nil {
			return err
		}
		defer add.Close()
		facts := newFactWriter(tx)
		defer facts.close()
		for _, h := range hs {
			if err := ctx.Err(); err != nil {
				return err
			}
			e := h.Event
			attrs, hash, err := store.ImportRow(e)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			n, err := affected(put.ExecContext(ctx, dialect.EventArgs(e, attrs, hash)...))
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			res.Events += n
			if n > 0 {
				if err := facts.write(ctx, e, attrs); err != nil {
					return fmt.Errorf("event %s: %w", e.ID, err)
				}
			}
			for _, t := range h.Timeline {
				n, err := affected(add.ExecContext(ctx, e.ID, t.State, nanos(t.At), string(t.Source)))
				if err != nil {
					return fmt.Errorf("event %s timeline: %w", e.ID, err)
				}
				res.Timeline += n
			}
		}
		return nil
	})
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("sqlite: import: %w", err)
	}
	return res, nil
}
