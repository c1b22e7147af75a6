package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/change"
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

// ConvertDeliveries implements store.DeliveryConverter. The claim takes
// the rows FOR UPDATE SKIP LOCKED: replicas converting at once split the
// pending deliveries and never convert one twice.
func (s *Store) ConvertDeliveries(ctx context.Context, claim store.DeliveryClaim,
	convert func([]store.Delivery) []store.Conversion) (store.ConvertResult, error) {
	var res store.ConvertResult
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		q := func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
			return runQuery(ctx, tx, stmt, args, read)
		}
		var (
			events []change.Event
			err    error
		)
		res, events, err = store.ClaimBatch(ctx, q, dialect, scan, claim, "FOR UPDATE SKIP LOCKED", convert)
		if err != nil || len(res.Deliveries) == 0 {
			return err
		}
		b := &upsertBatch{}
		if len(events) > 0 {
			ids := make([]string, 0, len(events))
			for i, e := range events {
				events[i] = normalize(e)
				ids = append(ids, e.ID)
			}
			slices.Sort(ids)
			ids = slices.Compact(ids)
			if err := lockIDs(ctx, tx, ids); err != nil {
				return err
			}
			if b, err = load(ctx, tx, ids); err != nil {
				return err
			}
			for _, e := range events {
				r, err := b.upsert(e)
				if err != nil {
					return fmt.Errorf("event %s: %w", e.ID, err)
				}
				res.Upsert = res.Upsert.Add(r)
			}
		}
		now := time.Now()
		for _, c := range res.Conversions {
			q, a := dialect.FinishDelivery(c, now)
			b.batch.Queue(q, a...)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return tx.SendBatch(ctx, &b.batch).Close()
	})
	if err != nil {
		return store.ConvertResult{}, fmt.Errorf("postgres: convert deliveries: %w", err)
	}
	return res, nil
}
