package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/store"
)

// PutDelivery implements store.Store. The insert commits on its own before
// it returns, so the delivery is durable by then.
func (s *Store) PutDelivery(ctx context.Context, d store.Delivery) (int64, bool, error) {
	args, err := dialect.NewDeliveryArgs(d)
	if err != nil {
		return 0, false, fmt.Errorf("postgres: put delivery: %w", err)
	}
	var id int64
	// A concurrent insert of the same key makes ON CONFLICT wait for it;
	// then nothing is returned and the select (a new snapshot under READ
	// COMMITTED) finds the stored row.
	for range maxAttempts {
		err = s.pool.QueryRow(ctx, dialect.PutDelivery()+` RETURNING id`, args...).Scan(&id)
		if err == nil {
			return id, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, false, fmt.Errorf("postgres: put delivery: %w", err)
		}
		err = s.pool.QueryRow(ctx, `SELECT id FROM deliveries WHERE idempotency_key = $1`, d.IdempotencyKey).Scan(&id)
		if err == nil {
			return id, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, false, fmt.Errorf("postgres: put delivery: %w", err)
		}
		// Deleted in between: try again.
	}
	return 0, false, fmt.Errorf("postgres: put delivery: %w", err)
}
