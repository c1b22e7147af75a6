package sqlite

import (
	"context"
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
		if err := s.ReadVersions(ctx, q, args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}
