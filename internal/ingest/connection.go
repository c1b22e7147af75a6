package ingest

import (
	"context"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// ConnectionStore is the store a poller of an added GitLab connection
// writes through: its events under the connection's ids
// (store.ConnectionEventID), its projects and sync state those of the
// connection (projects), never the default connection's. For the default
// connection it is st itself.
func ConnectionStore(st ProcessStore, name string, projects store.ProjectStore) ProcessStore {
	if name == "" || name == store.DefaultConnection {
		return st
	}
	return connectionStore{EventStore: st, ProjectStore: projects, DeliveryStore: st, prefix: store.ConnectionEventID(name, "")}
}

type connectionStore struct {
	store.EventStore
	store.ProjectStore
	store.DeliveryStore
	prefix string // "name:"
}

func (c connectionStore) Upsert(ctx context.Context, events ...change.Event) (store.UpsertResult, error) {
	own := make([]change.Event, len(events))
	for i, e := range events {
		e.ID = c.prefix + e.ID
		own[i] = e
	}
	return c.EventStore.Upsert(ctx, own...)
}

func (c connectionStore) Versions(ctx context.Context, ids []string) (map[string]time.Time, error) {
	own := make([]string, len(ids))
	for i, id := range ids {
		own[i] = c.prefix + id
	}
	got, err := c.EventStore.Versions(ctx, own)
	return c.trim(got), err
}

func (c connectionStore) VersionsByPrefix(ctx context.Context, prefix string) (map[string]time.Time, error) {
	got, err := c.EventStore.VersionsByPrefix(ctx, c.prefix+prefix)
	return c.trim(got), err
}

// trim gives back the ids the poller asked for.
func (c connectionStore) trim(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for id, at := range m {
		if rest, ok := strings.CutPrefix(id, c.prefix); ok {
			out[rest] = at
		}
	}
	return out
}
