package postgres

import (
	"context"
	"time"
)

// Versions implements store.Store. The ids go as one array parameter, so
// there is no limit on how many one call asks about.
func (s *Store) Versions(ctx context.Context, ids []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	q := `SELECT id, updated_at FROM events WHERE source = 'poll' AND id = ANY($1::text[])`
	if err := s.ReadVersions(ctx, q, []any{ids}, out); err != nil {
		return nil, err
	}
	return out, nil
}
