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
	stmt, args, err := dialect.ClaimDeliveries(claim, "")
	if err != nil {
		return store.ConvertResult{}, fmt.Errorf("sqlite: %w", err)
	}
	var res store.ConvertResult
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		res = store.ConvertResult{}
		var claimed []store.ClaimedSize
		err := runQuery(ctx, tx, stmt, args, func(rows store.Rows) error {
			var err error
			claimed, err = store.Collect(rows, store.ScanClaimed)
			return err
		})
		if err != nil || len(claimed) == 0 {
			return err
		}
		ids := store.ClaimedIDs(claimed, claim.MaxBytes)
		res.More = len(ids) < len(claimed) || (len(claim.IDs) == 0 && len(claimed) == claim.Limit)
		read, rargs := dialect.Deliveries(ids)
		err = runQuery(ctx, tx, read, rargs, func(rows store.Rows) error {
			var err error
			res.Deliveries, err = store.Collect(rows, scan.DeliveryWithBody)
			return err
		})
		if err != nil {
			return err
		}
		var events []change.Event
		res.Conversions, events, err = dialect.CheckConversions(res.Deliveries, convert(res.Deliveries))
		if err != nil {
			return err
		}
		if len(events) > 0 {
			u, err := prepareUpserter(ctx, tx)
			if err != nil {
				return err
			}
			defer u.close()
			for _, e := range events {
				if err := ctx.Err(); err != nil {
					return err
				}
				r, err := u.upsert(ctx, e)
				if err != nil {
					return fmt.Errorf("event %s: %w", e.ID, err)
				}
				res.Upsert = res.Upsert.Add(r)
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
