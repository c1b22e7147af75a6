package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// ExportEvents implements store.Store.
func (s *Store) ExportEvents(ctx context.Context, after string, n int) ([]store.History, error) {
	lim, err := limit("export events", n)
	if err != nil {
		return nil, err
	}
	// One snapshot: the events and their timelines of one moment.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("postgres: export events: %w", err)
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE id > $1 ORDER BY id LIMIT $2`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: export events: %w", err)
	}
	var out []store.History
	index := map[string]int{}
	for rows.Next() {
		var (
			e                          change.Event
			kind, source               string
			created, updated, occurred pgtype.Timestamptz
			attrs                      []byte
		)
		if err := rows.Scan(&e.ID, &kind, &e.ProjectID, &e.ProjectPath, &e.Title, &e.State, &e.Author,
			&e.WebURL, &e.Ref, &e.SHA, &created, &updated, &occurred, &source, &attrs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: export events: %w", err)
		}
		e.Kind, e.Source = change.Kind(kind), change.Source(source)
		e.CreatedAt, e.UpdatedAt, e.OccurredAt = fromTS(created), fromTS(updated), fromTS(occurred)
		if e.Attrs, err = exactAttrs(attrs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: export event %s: %w", e.ID, err)
		}
		index[e.ID] = len(out)
		out = append(out, store.History{Event: e})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: export events: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	rows, err = tx.Query(ctx, `SELECT event_id, state, at, source FROM timeline
		WHERE event_id > $1 AND event_id <= $2 ORDER BY event_id, at, seq`, after, out[len(out)-1].Event.ID)
	if err != nil {
		return nil, fmt.Errorf("postgres: export timeline: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t      change.TimelineEntry
			at     pgtype.Timestamptz
			source string
		)
		if err := rows.Scan(&t.EventID, &t.State, &at, &source); err != nil {
			return nil, fmt.Errorf("postgres: export timeline: %w", err)
		}
		t.At, t.Source = fromTS(at), change.Source(source)
		if i, ok := index[t.EventID]; ok {
			out[i].Timeline = append(out[i].Timeline, t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: export timeline: %w", err)
	}
	return out, nil
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
	if len(hs) == 0 {
		return res, nil
	}
	norm := make([]store.History, len(hs))
	ids := make([]string, 0, len(hs))
	for i, h := range hs {
		if err := h.Event.Validate(); err != nil {
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
		if _, err := tx.Exec(ctx, `SELECT count(pg_advisory_xact_lock($1, k)) FROM (
				SELECT DISTINCT hashtext(id) AS k FROM unnest($2::text[]) AS id ORDER BY k) AS keys`,
			upsertLockClass, ids); err != nil {
			return err
		}
		var (
			b    pgx.Batch
			kind []bool // per queued statement: true for an event row
		)
		for _, h := range norm {
			e := h.Event
			attrs, err := marshalAttrs(e.Attrs)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			hash, err := contentHash(e, attrs)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			var a any
			if attrs != nil {
				a = string(attrs)
			}
			b.Queue(`INSERT INTO events (`+eventColumns+`, hash)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16)
				ON CONFLICT (id) DO UPDATE SET
					kind = excluded.kind, project_id = excluded.project_id,
					project_path = excluded.project_path, title = excluded.title,
					state = excluded.state, author = excluded.author,
					web_url = excluded.web_url, ref = excluded.ref, sha = excluded.sha,
					created_at = excluded.created_at, updated_at = excluded.updated_at,
					occurred_at = excluded.occurred_at, source = excluded.source,
					attrs = excluded.attrs, hash = excluded.hash
				WHERE excluded.updated_at > events.updated_at`,
				e.ID, string(e.Kind), e.ProjectID, e.ProjectPath, e.Title,
				e.State, e.Author, e.WebURL, e.Ref, e.SHA,
				e.CreatedAt, e.UpdatedAt, e.OccurredAt, string(e.Source), a, hash)
			kind = append(kind, true)
			for _, t := range h.Timeline {
				b.Queue(`INSERT INTO timeline (event_id, state, at, source) VALUES ($1, $2, $3, $4)
					ON CONFLICT (event_id, state, at) DO NOTHING`, e.ID, t.State, t.At, string(t.Source))
				kind = append(kind, false)
			}
		}
		br := tx.SendBatch(ctx, &b)
		for _, isEvent := range kind {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			switch {
			case tag.RowsAffected() == 0:
			case isEvent:
				res.Events++
			default:
				res.Timeline++
			}
		}
		return br.Close()
	})
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("postgres: import: %w", err)
	}
	return res, nil
}

// ExportAudit implements store.Store.
func (s *Store) ExportAudit(ctx context.Context, after int64, n int) ([]store.AuditEntry, error) {
	lim, err := limit("export audit", n)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, method, path, status, duration_ns, rate_limit_remaining, job, error
		FROM audit WHERE id > $1 ORDER BY id LIMIT $2`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: export audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var (
			e   store.AuditEntry
			at  pgtype.Timestamptz
			dur int64
		)
		if err := rows.Scan(&e.ID, &at, &e.Method, &e.Path, &e.Status, &dur, &e.RateLimitRemaining, &e.Job, &e.Error); err != nil {
			return nil, fmt.Errorf("postgres: export audit: %w", err)
		}
		e.Time, e.Duration = fromTS(at), time.Duration(dur)
		e.DurationMS = float64(dur) / 1e6
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: export audit: %w", err)
	}
	return out, nil
}

// ImportAudit implements store.Store. The identity sequence is moved past
// the imported ids, so later appends never reuse one.
func (s *Store) ImportAudit(ctx context.Context, entries ...store.AuditEntry) (int, error) {
	for _, e := range entries {
		if e.ID <= 0 {
			return 0, errors.New("postgres: import audit: entry without id")
		}
	}
	n := 0
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		n = 0
		var b pgx.Batch
		for _, e := range entries {
			b.Queue(`INSERT INTO audit (id, at, method, path, status, duration_ns, rate_limit_remaining, job, error)
				OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
				e.ID, ts(e.Time), e.Method, e.Path, int32(e.Status), int64(e.Duration), int32(e.RateLimitRemaining), e.Job, e.Error)
		}
		var err error
		if n, err = execCount(tx.SendBatch(ctx, &b), len(entries)); err != nil {
			return err
		}
		return bumpIdentity(ctx, tx, "audit", n)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: import audit: %w", err)
	}
	return n, nil
}

// ExportDeliveries implements store.Store.
func (s *Store) ExportDeliveries(ctx context.Context, after int64, n int) ([]store.Delivery, error) {
	lim, err := limit("export deliveries", n)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+`, body FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: export deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows, true)
		if err != nil {
			return nil, fmt.Errorf("postgres: export deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: export deliveries: %w", err)
	}
	return out, nil
}

// ImportDeliveries implements store.Store.
func (s *Store) ImportDeliveries(ctx context.Context, ds ...store.Delivery) (int, error) {
	for _, d := range ds {
		switch {
		case d.ID <= 0:
			return 0, errors.New("postgres: import deliveries: delivery without id")
		case d.IdempotencyKey == "":
			return 0, fmt.Errorf("postgres: import deliveries: delivery %d has no idempotency key", d.ID)
		}
	}
	n := 0
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		n = 0
		var b pgx.Batch
		for _, d := range ds {
			headers, err := json.Marshal(d.Headers)
			if err != nil {
				return fmt.Errorf("delivery %d: %w", d.ID, err)
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
			b.Queue(`INSERT INTO deliveries (`+deliveryColumns+`, body) OVERRIDING SYSTEM VALUE
				VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
				d.ID, d.IdempotencyKey, d.EventType, d.EventUUID, d.WebhookUUID, string(headers),
				ts(d.ReceivedAt), status, d.Attempts, d.LastError, ts(d.ProcessedAt), body)
		}
		var err error
		if n, err = execCount(tx.SendBatch(ctx, &b), len(ds)); err != nil {
			return err
		}
		return bumpIdentity(ctx, tx, "deliveries", n)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: import deliveries: %w", err)
	}
	return n, nil
}

// execCount reads n results of a batch and sums the rows they affected.
func execCount(br pgx.BatchResults, n int) (int, error) {
	total := 0
	for range n {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return 0, err
		}
		total += int(tag.RowsAffected())
	}
	return total, br.Close()
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
