package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// PutDelivery implements store.Store.
func (s *Store) PutDelivery(ctx context.Context, d store.Delivery) (int64, bool, error) {
	args, err := dialect.NewDeliveryArgs(d)
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: put delivery: %w", err)
	}
	var (
		id        int64
		duplicate bool
	)
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, dialect.PutDelivery(), args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			duplicate = true
			return tx.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE idempotency_key = ?1`, d.IdempotencyKey).Scan(&id)
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: put delivery: %w", err)
	}
	return id, duplicate, nil
}

// ConvertDeliveries implements store.DeliveryConverter. The write
// transaction (BEGIN IMMEDIATE) holds the file's write lock from the
// claim to the commit, so no other writer can take the same deliveries.
func (s *Store) ConvertDeliveries(ctx context.Context, claim store.DeliveryClaim,
	convert func([]store.Delivery) []store.Conversion) (store.ConvertResult, error) {
	var res store.ConvertResult
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		q := func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
			return runQuery(ctx, tx, stmt, args, read)
		}
		var (
			events []change.Event
			err    error
		)
		res, events, err = store.ClaimBatch(ctx, q, dialect, scan, claim, "", convert)
		if err != nil || len(res.Deliveries) == 0 {
			return err
		}
		if len(events) > 0 {
			u, err := prepareUpserter(ctx, tx)
			if err != nil {
				return err
			}
			defer u.close()
			if res.Upsert, err = u.all(ctx, events); err != nil {
				return err
			}
		}
		now := time.Now()
		for _, c := range res.Conversions {
			q, a := dialect.FinishDelivery(c, now)
			if _, err := tx.ExecContext(ctx, q, a...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.ConvertResult{}, fmt.Errorf("sqlite: convert deliveries: %w", err)
	}
	return res, nil
}
