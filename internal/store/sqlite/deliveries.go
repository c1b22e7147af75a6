package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// PutDelivery implements store.Store.
func (s *Store) PutDelivery(ctx context.Context, d store.Delivery) (int64, bool, error) {
	if d.IdempotencyKey == "" {
		return 0, false, errors.New("sqlite: put delivery: no idempotency key")
	}
	if err := checkTime("received_at", d.ReceivedAt); err != nil {
		return 0, false, fmt.Errorf("sqlite: put delivery: %w", err)
	}
	headers, err := json.Marshal(d.Headers)
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: put delivery: %w", err)
	}
	status := d.Status
	if status == "" {
		status = store.DeliveryPending
	}
	var (
		id        int64
		duplicate bool
	)
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO deliveries
			(idempotency_key, event_type, event_uuid, webhook_uuid, headers, body, received_at, status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
			d.IdempotencyKey, d.EventType, d.EventUUID, d.WebhookUUID, string(headers), d.Body, nanos(d.ReceivedAt), status)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			duplicate = true
			return tx.QueryRowContext(ctx, `SELECT id FROM deliveries WHERE idempotency_key = ?`, d.IdempotencyKey).Scan(&id)
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: put delivery: %w", err)
	}
	return id, duplicate, nil
}

const deliveryColumns = `id, idempotency_key, event_type, event_uuid, webhook_uuid, headers, received_at, status, attempts, last_error, processed_at`

func scanDelivery(r scanner, withBody bool) (store.Delivery, error) {
	var (
		d                   store.Delivery
		headers             string
		received, processed int64
	)
	dest := []any{&d.ID, &d.IdempotencyKey, &d.EventType, &d.EventUUID, &d.WebhookUUID, &headers, &received,
		&d.Status, &d.Attempts, &d.LastError, &processed}
	if withBody {
		dest = append(dest, &d.Body)
	}
	if err := r.Scan(dest...); err != nil {
		return d, err
	}
	d.ReceivedAt, d.ProcessedAt = fromNanos(received), fromNanos(processed)
	if err := json.Unmarshal([]byte(headers), &d.Headers); err != nil {
		return d, fmt.Errorf("headers of delivery %d: %w", d.ID, err)
	}
	return d, nil
}

// Delivery implements store.Store.
func (s *Store) Delivery(ctx context.Context, id int64) (store.Delivery, error) {
	d, err := scanDelivery(s.db.QueryRowContext(ctx, `SELECT `+deliveryColumns+`, body FROM deliveries WHERE id = ?`, id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("sqlite: delivery %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("sqlite: delivery %d: %w", id, err)
	}
	return d, nil
}

// ListDeliveries implements store.Store.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) (store.DeliveryPage, error) {
	limit, err := store.PageLimit(f.Limit)
	if err != nil {
		return store.DeliveryPage{}, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	var (
		where []string
		args  []any
	)
	if f.Cursor != "" {
		id, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || id <= 0 {
			return store.DeliveryPage{}, fmt.Errorf("sqlite: list deliveries: %w", store.ErrInvalidCursor)
		}
		where, args = append(where, "id < ?"), append(args, id)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	rows, err := s.db.QueryContext(ctx, q, append(args, limit+1)...)
	if err != nil {
		return store.DeliveryPage{}, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	defer rows.Close()
	var page store.DeliveryPage
	for rows.Next() {
		d, err := scanDelivery(rows, false)
		if err != nil {
			return store.DeliveryPage{}, fmt.Errorf("sqlite: list deliveries: %w", err)
		}
		page.Deliveries = append(page.Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return store.DeliveryPage{}, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	if len(page.Deliveries) > limit {
		page.Deliveries = page.Deliveries[:limit]
		page.NextCursor = strconv.FormatInt(page.Deliveries[limit-1].ID, 10)
	}
	return page, nil
}

// MarkDelivery implements store.Store.
func (s *Store) MarkDelivery(ctx context.Context, id int64, status, lastError string) error {
	var processed int64
	if status == store.DeliveryProcessed || status == store.DeliveryStoredRaw {
		processed = time.Now().UnixNano()
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = ?, last_error = ?, attempts = attempts + 1,
			processed_at = ? WHERE id = ?`, status, lastError, processed, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark delivery %d: %w", id, err)
	}
	return nil
}
