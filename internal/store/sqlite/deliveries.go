package sqlite

import (
	"context"
	"database/sql"
	"fmt"

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
