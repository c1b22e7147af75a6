package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/store"
)

// AppendAudit implements store.Store, through COPY: the audit log is
// written in bursts of hundreds of entries.
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
