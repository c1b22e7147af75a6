package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Versions implements store.Store. The ids go as one array parameter, so
// there is no limit on how many one call asks about.
func (s *Store) Versions(ctx context.Context, ids []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	q := `SELECT id, updated_at FROM events WHERE source = 'poll' AND id = ANY($1::text[])`
	if err := s.scanVersions(ctx, out, q, ids); err != nil {
		return nil, err
	}
	return out, nil
}

// VersionsByPrefix implements store.Store.
func (s *Store) VersionsByPrefix(ctx context.Context, prefix string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	// A range on the primary key (byte order, COLLATE "C") instead of LIKE:
	// ids hold % and _.
	q := `SELECT id, updated_at FROM events WHERE id >= $1 AND id < $2 AND source = 'poll'`
	if err := s.scanVersions(ctx, out, q, prefix, prefix+"\U0010FFFF"); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) scanVersions(ctx context.Context, out map[string]time.Time, q string, args ...any) error {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("postgres: versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			at pgtype.Timestamptz
		)
		if err := rows.Scan(&id, &at); err != nil {
			return fmt.Errorf("postgres: versions: %w", err)
		}
		out[id] = fromTS(at)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: versions: %w", err)
	}
	return nil
}
