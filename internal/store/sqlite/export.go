package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// ExportEvents implements store.Store.
func (s *Store) ExportEvents(ctx context.Context, after string, limit int) ([]store.History, error) {
	lim, err := store.PageLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: export events: %w", err)
	}
	// One read transaction: the events and their timelines of one moment.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: export events: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE id > ? ORDER BY id LIMIT ?`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("sqlite: export events: %w", err)
	}
	var out []store.History
	index := map[string]int{}
	for rows.Next() {
		e, attrs, err := scanRawEvent(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: export events: %w", err)
		}
		if e.Attrs, err = exactAttrs(attrs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: export event %s: %w", e.ID, err)
		}
		index[e.ID] = len(out)
		out = append(out, store.History{Event: e})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: export events: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	last := out[len(out)-1].Event.ID
	rows, err = tx.QueryContext(ctx, `SELECT event_id, state, at, source FROM timeline
		WHERE event_id > ? AND event_id <= ? ORDER BY event_id, at, seq`, after, last)
	if err != nil {
		return nil, fmt.Errorf("sqlite: export timeline: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t      change.TimelineEntry
			at     int64
			source string
		)
		if err := rows.Scan(&t.EventID, &t.State, &at, &source); err != nil {
			return nil, fmt.Errorf("sqlite: export timeline: %w", err)
		}
		t.At, t.Source = fromNanos(at), change.Source(source)
		if i, ok := index[t.EventID]; ok {
			out[i].Timeline = append(out[i].Timeline, t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: export timeline: %w", err)
	}
	return out, nil
}

// scanRawEvent is scanEvent leaving the attributes as stored.
func scanRawEvent(r scanner) (change.Event, []byte, error) {
	var (
		e                          change.Event
		kind, source               string
		created, updated, occurred int64
		attrs                      sql.NullString
	)
	err := r.Scan(&e.ID, &kind, &e.ProjectID, &e.ProjectPath, &e.Title, &e.State, &e.Author,
		&e.WebURL, &e.Ref, &e.SHA, &created, &updated, &occurred, &source, &attrs)
	if err != nil {
		return e, nil, err
	}
	e.Kind, e.Source = change.Kind(kind), change.Source(source)
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = fromNanos(created), fromNanos(updated), fromNanos(occurred)
	if !attrs.Valid {
		return e, nil, nil
	}
	return e, []byte(attrs.String), nil
}

// exactAttrs decodes stored attributes keeping numbers as json.Number.
func exactAttrs(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("stored attributes: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// ImportEvents implements store.Store.
func (s *Store) ImportEvents(ctx context.Context, hs ...store.History) (store.ImportResult, error) {
	var res store.ImportResult
	for _, h := range hs {
		if err := checkEvent(h.Event); err != nil {
			return res, fmt.Errorf("sqlite: import: %w", err)
		}
		for _, t := range h.Timeline {
			if err := checkTime("timeline "+t.State, t.At); err != nil {
				return res, fmt.Errorf("sqlite: import: event %s: %w", h.Event.ID, err)
			}
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		res = store.ImportResult{}
		put, err := tx.PrepareContext(ctx, `INSERT INTO events (`+eventColumns+`, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				kind = excluded.kind, project_id = excluded.project_id,
				project_path = excluded.project_path, title = excluded.title,
				state = excluded.state, author = excluded.author,
				web_url = excluded.web_url, ref = excluded.ref, sha = excluded.sha,
				created_at = excluded.created_at, updated_at = excluded.updated_at,
				occurred_at = excluded.occurred_at, source = excluded.source,
				attrs = excluded.attrs, hash = excluded.hash
			WHERE excluded.updated_at > events.updated_at`)
		if err != nil {
			return err
		}
		defer put.Close()
		add, err := tx.PrepareContext(ctx, `INSERT INTO timeline (event_id, state, at, source) VALUES (?, ?, ?, ?)
			ON CONFLICT (event_id, state, at) DO NOTHING`)
		if err != nil {
			return err
		}
		defer add.Close()
		for _, h := range hs {
			if err := ctx.Err(); err != nil {
				return err
			}
			e := h.Event
			attrs, err := marshalAttrs(e.Attrs)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			var a any
			if attrs != nil {
				a = string(attrs)
			}
			r, err := put.ExecContext(ctx, e.ID, string(e.Kind), e.ProjectID, e.ProjectPath, e.Title,
				e.State, e.Author, e.WebURL, e.Ref, e.SHA,
				nanos(e.CreatedAt), nanos(e.UpdatedAt), nanos(e.OccurredAt), string(e.Source), a, contentHash(e, attrs))
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			if n, _ := r.RowsAffected(); n > 0 {
				res.Events++
			}
			for _, t := range h.Timeline {
				r, err := add.ExecContext(ctx, e.ID, t.State, nanos(t.At), string(t.Source))
				if err != nil {
					return fmt.Errorf("event %s timeline: %w", e.ID, err)
				}
				if n, _ := r.RowsAffected(); n > 0 {
					res.Timeline++
				}
			}
		}
		return nil
	})
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("sqlite: import: %w", err)
	}
	return res, nil
}

// ExportAudit implements store.Store.
func (s *Store) ExportAudit(ctx context.Context, after int64, limit int) ([]store.AuditEntry, error) {
	lim, err := store.PageLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: export audit: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, method, path, status, duration_ns, rate_limit_remaining, job, error
		FROM audit WHERE id > ? ORDER BY id LIMIT ?`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("sqlite: export audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: export audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: export audit: %w", err)
	}
	return out, nil
}

// ImportAudit implements store.Store. AUTOINCREMENT moves past explicit ids,
// so later appends never reuse one.
func (s *Store) ImportAudit(ctx context.Context, entries ...store.AuditEntry) (int, error) {
	for _, e := range entries {
		if e.ID <= 0 {
			return 0, fmt.Errorf("sqlite: import audit: entry without id")
		}
		if err := checkTime("time", e.Time); err != nil {
			return 0, fmt.Errorf("sqlite: import audit: %w", err)
		}
	}
	n := 0
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		n = 0
		st, err := tx.PrepareContext(ctx, `INSERT INTO audit
			(id, at, method, path, status, duration_ns, rate_limit_remaining, job, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, e := range entries {
			r, err := st.ExecContext(ctx, e.ID, nanos(e.Time), e.Method, e.Path, e.Status, int64(e.Duration),
				e.RateLimitRemaining, e.Job, e.Error)
			if err != nil {
				return err
			}
			if k, _ := r.RowsAffected(); k > 0 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: import audit: %w", err)
	}
	return n, nil
}

// ExportDeliveries implements store.Store.
func (s *Store) ExportDeliveries(ctx context.Context, after int64, limit int) ([]store.Delivery, error) {
	lim, err := store.PageLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: export deliveries: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+deliveryColumns+`, body FROM deliveries WHERE id > ? ORDER BY id LIMIT ?`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("sqlite: export deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows, true)
		if err != nil {
			return nil, fmt.Errorf("sqlite: export deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: export deliveries: %w", err)
	}
	return out, nil
}

// ImportDeliveries implements store.Store.
func (s *Store) ImportDeliveries(ctx context.Context, ds ...store.Delivery) (int, error) {
	for _, d := range ds {
		switch {
		case d.ID <= 0:
			return 0, errors.New("sqlite: import deliveries: delivery without id")
		case d.IdempotencyKey == "":
			return 0, fmt.Errorf("sqlite: import deliveries: delivery %d has no idempotency key", d.ID)
		}
		for _, t := range []time.Time{d.ReceivedAt, d.ProcessedAt} {
			if err := checkTime("delivery time", t); err != nil {
				return 0, fmt.Errorf("sqlite: import deliveries: %w", err)
			}
		}
	}
	n := 0
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		n = 0
		st, err := tx.PrepareContext(ctx, `INSERT INTO deliveries (`+deliveryColumns+`, body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, d := range ds {
			headers, err := json.Marshal(d.Headers)
			if err != nil {
				return fmt.Errorf("delivery %d: %w", d.ID, err)
			}
			status := d.Status
			if status == "" {
				status = store.DeliveryPending
			}
			body := d.Body
			if body == nil {
				body = []byte{}
			}
			r, err := st.ExecContext(ctx, d.ID, d.IdempotencyKey, d.EventType, d.EventUUID, d.WebhookUUID, string(headers),
				nanos(d.ReceivedAt), status, d.Attempts, d.LastError, nanos(d.ProcessedAt), body)
			if err != nil {
				return fmt.Errorf("delivery %d: %w", d.ID, err)
			}
			if k, _ := r.RowsAffected(); k > 0 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: import deliveries: %w", err)
	}
	return n, nil
}

func scanAudit(r scanner) (store.AuditEntry, error) {
	var (
		e       store.AuditEntry
		at, dur int64
	)
	if err := r.Scan(&e.ID, &at, &e.Method, &e.Path, &e.Status, &dur, &e.RateLimitRemaining, &e.Job, &e.Error); err != nil {
		return e, err
	}
	e.Time, e.Duration = fromNanos(at), time.Duration(dur)
	e.DurationMS = float64(dur) / 1e6
	return e, nil
}
