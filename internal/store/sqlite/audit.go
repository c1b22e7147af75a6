package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, entries ...store.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if err := checkTime("time", e.Time); err != nil {
			return fmt.Errorf("sqlite: append audit: %w", err)
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO audit
			(at, method, path, status, duration_ns, rate_limit_remaining, job, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, e := range entries {
			if _, err := st.ExecContext(ctx, nanos(e.Time), e.Method, e.Path, e.Status, int64(e.Duration),
				e.RateLimitRemaining, e.Job, e.Error); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	return nil
}

// ListAudit implements store.Store.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error) {
	limit, err := store.PageLimit(f.Limit)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("sqlite: list audit: %w", err)
	}
	var (
		where []string
		args  []any
	)
	if f.Cursor != "" {
		id, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || id <= 0 {
			return store.AuditPage{}, fmt.Errorf("sqlite: list audit: %w", store.ErrInvalidCursor)
		}
		where, args = append(where, "id < ?"), append(args, id)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, nanos(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, nanos(f.Until))
	}
	if f.Job != "" {
		where, args = append(where, "job = ?"), append(args, f.Job)
	}
	switch {
	case f.Status == -1:
		where = append(where, "status = 0")
	case f.Status != 0:
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if f.PathPrefix != "" {
		// substr instead of LIKE: paths contain % and _ (URL-encoded ids).
		where, args = append(where, "substr(path, 1, ?) = ?"), append(args, len(f.PathPrefix), f.PathPrefix)
	}
	q := `SELECT id, at, method, path, status, duration_ns, rate_limit_remaining, job, error FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("sqlite: list audit: %w", err)
	}
	defer rows.Close()
	var page store.AuditPage
	for rows.Next() {
		var (
			e       store.AuditEntry
			at, dur int64
		)
		if err := rows.Scan(&e.ID, &at, &e.Method, &e.Path, &e.Status, &dur, &e.RateLimitRemaining, &e.Job, &e.Error); err != nil {
			return store.AuditPage{}, fmt.Errorf("sqlite: list audit: %w", err)
		}
		e.Time, e.Duration = fromNanos(at), time.Duration(dur)
		e.DurationMS = float64(dur) / 1e6
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return store.AuditPage{}, fmt.Errorf("sqlite: list audit: %w", err)
	}
	if len(page.Entries) > limit {
		page.Entries = page.Entries[:limit]
		page.NextCursor = strconv.FormatInt(page.Entries[limit-1].ID, 10)
	}
	return page, nil
}

// PruneAudit implements store.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE at < ?`, nanos(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune audit: %w", err)
	}
	return int(n), nil
}
