package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// versionsBatch keeps each query under SQLite's bound-parameter limit.
const versionsBatch = 500

// Versions implements store.Store.
func (s *Store) Versions(ctx context.Context, ids []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(ids))
	for start := 0; start < len(ids); start += versionsBatch {
		batch := ids[start:min(start+versionsBatch, len(ids))]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		q := `SELECT id, updated_at FROM events WHERE source = 'poll' AND id IN (?` + strings.Repeat(",?", len(batch)-1) + `)`
		if err := s.scanVersions(ctx, out, q, args...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// VersionsByPrefix implements store.Store.
func (s *Store) VersionsByPrefix(ctx context.Context, prefix string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	// A range on the primary key instead of LIKE: ids hold % and _.
	q := `SELECT id, updated_at FROM events WHERE id >= ? AND id < ? AND source = 'poll'`
	if err := s.scanVersions(ctx, out, q, prefix, prefix+"\U0010FFFF"); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) scanVersions(ctx context.Context, out map[string]time.Time, q string, args ...any) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite: versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			at int64
		)
		if err := rows.Scan(&id, &at); err != nil {
			return fmt.Errorf("sqlite: versions: %w", err)
		}
		out[id] = fromNanos(at)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: versions: %w", err)
	}
	return nil
}
