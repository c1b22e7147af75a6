package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/labtrail/labtrail/internal/store"
)

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, entries ...store.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit"},
			[]string{"at", "method", "path", "status", "duration_ns", "rate_limit_remaining", "job", "error"},
			pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
				e := entries[i]
				return []any{ts(e.Time), e.Method, e.Path, int32(e.Status), int64(e.Duration),
					int32(e.RateLimitRemaining), e.Job, e.Error}, nil
			}))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: append audit: %w", err)
	}
	return nil
}

// ListAudit implements store.Store.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error) {
	lim, err := limit("list audit", f.Limit)
	if err != nil {
		return store.AuditPage{}, err
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, a any) {
		args = append(args, a)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Cursor != "" {
		id, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || id <= 0 {
			return store.AuditPage{}, fmt.Errorf("postgres: list audit: %w", store.ErrInvalidCursor)
		}
		add("id < ?", id)
	}
	if !f.Since.IsZero() {
		add("at >= ?", ts(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", ts(f.Until))
	}
	if f.Job != "" {
		add("job = ?", f.Job)
	}
	switch {
	case f.Status == -1:
		where = append(where, "status = 0")
	case f.Status != 0:
		add("status = ?", f.Status)
	}
	if f.PathPrefix != "" {
		// starts_with instead of LIKE: paths contain % and _ (URL-encoded ids).
		add("starts_with(path, ?)", f.PathPrefix)
	}
	q := `SELECT id, at, method, path, status, duration_ns, rate_limit_remaining, job, error FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, lim+1)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("postgres: list audit: %w", err)
	}
	defer rows.Close()
	var page store.AuditPage
	for rows.Next() {
		var (
			e   store.AuditEntry
			at  pgtype.Timestamptz
			dur int64
		)
		if err := rows.Scan(&e.ID, &at, &e.Method, &e.Path, &e.Status, &dur, &e.RateLimitRemaining, &e.Job, &e.Error); err != nil {
			return store.AuditPage{}, fmt.Errorf("postgres: list audit: %w", err)
		}
		e.Time, e.Duration = fromTS(at), time.Duration(dur)
		e.DurationMS = float64(dur) / 1e6
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return store.AuditPage{}, fmt.Errorf("postgres: list audit: %w", err)
	}
	if len(page.Entries) > lim {
		page.Entries = page.Entries[:lim]
		page.NextCursor = strconv.FormatInt(page.Entries[lim-1].ID, 10)
	}
	return page, nil
}

// PruneAudit implements store.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit WHERE at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: prune audit: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
