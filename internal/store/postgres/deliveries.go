package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/labtrail/labtrail/internal/store"
)

// PutDelivery implements store.Store. The insert commits on its own before
// it returns, so the delivery is durable by then.
func (s *Store) PutDelivery(ctx context.Context, d store.Delivery) (int64, bool, error) {
	if d.IdempotencyKey == "" {
		return 0, false, errors.New("postgres: put delivery: no idempotency key")
	}
	headers, err := json.Marshal(d.Headers)
	if err != nil {
		return 0, false, fmt.Errorf("postgres: put delivery: %w", err)
	}
	if d.Headers == nil {
		headers = []byte("{}")
	}
	status := d.Status
	if status == "" {
		status = store.DeliveryPending
	}
	body := d.Body
	if body == nil {
		body = []byte{}
	}
	var id int64
	// A concurrent insert of the same key makes ON CONFLICT wait for it;
	// then nothing is returned and the select (a new snapshot under READ
	// COMMITTED) finds the stored row.
	for range maxAttempts {
		err = s.pool.QueryRow(ctx, `INSERT INTO deliveries
			(idempotency_key, event_type, event_uuid, webhook_uuid, headers, body, received_at, status)
			VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
			d.IdempotencyKey, d.EventType, d.EventUUID, d.WebhookUUID, string(headers), body, ts(d.ReceivedAt), status).Scan(&id)
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

const deliveryColumns = `id, idempotency_key, event_type, event_uuid, webhook_uuid, headers, received_at, status, attempts, last_error, processed_at`

func scanDelivery(r scanner, withBody bool) (store.Delivery, error) {
	var (
		d                   store.Delivery
		headers             []byte
		received, processed pgtype.Timestamptz
	)
	dest := []any{&d.ID, &d.IdempotencyKey, &d.EventType, &d.EventUUID, &d.WebhookUUID, &headers, &received,
		&d.Status, &d.Attempts, &d.LastError, &processed}
	if withBody {
		dest = append(dest, &d.Body)
	}
	if err := r.Scan(dest...); err != nil {
		return d, err
	}
	d.ReceivedAt, d.ProcessedAt = fromTS(received), fromTS(processed)
	if err := json.Unmarshal(headers, &d.Headers); err != nil {
		return d, fmt.Errorf("headers of delivery %d: %w", d.ID, err)
	}
	return d, nil
}

// Delivery implements store.Store.
func (s *Store) Delivery(ctx context.Context, id int64) (store.Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`, body FROM deliveries WHERE id = $1`, id), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("postgres: delivery %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("postgres: delivery %d: %w", id, err)
	}
	return d, nil
}

// ListDeliveries implements store.Store.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) (store.DeliveryPage, error) {
	lim, err := limit("list deliveries", f.Limit)
	if err != nil {
		return store.DeliveryPage{}, err
	}
	var (
		where []string
		args  []any
	)
	if f.Cursor != "" {
		id, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || id <= 0 {
			return store.DeliveryPage{}, fmt.Errorf("postgres: list deliveries: %w", store.ErrInvalidCursor)
		}
		args = append(args, id)
		where = append(where, fmt.Sprintf("id < $%d", len(args)))
	}
	if f.Status != "" {
		args = append(args, f.Status)
		where = append(where, fmt.Sprintf("status = $%d", len(args)))
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, lim+1)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return store.DeliveryPage{}, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	defer rows.Close()
	var page store.DeliveryPage
	for rows.Next() {
		d, err := scanDelivery(rows, false)
		if err != nil {
			return store.DeliveryPage{}, fmt.Errorf("postgres: list deliveries: %w", err)
		}
		page.Deliveries = append(page.Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return store.DeliveryPage{}, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	if len(page.Deliveries) > lim {
		page.Deliveries = page.Deliveries[:lim]
		page.NextCursor = strconv.FormatInt(page.Deliveries[lim-1].ID, 10)
	}
	return page, nil
}

// MarkDelivery implements store.Store.
func (s *Store) MarkDelivery(ctx context.Context, id int64, status, lastError string) error {
	var processed time.Time
	if status == store.DeliveryProcessed || status == store.DeliveryStoredRaw {
		processed = ts(time.Now())
	}
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = $1, last_error = $2, attempts = attempts + 1,
		processed_at = $3 WHERE id = $4`, status, lastError, processed, id)
	if err != nil {
		return fmt.Errorf("postgres: mark delivery %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: mark delivery %d: %w", id, store.ErrNotFound)
	}
	return nil
}
