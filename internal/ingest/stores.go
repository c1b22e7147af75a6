package ingest

import "github.com/labtrail/labtrail/internal/store"

// SyncStore is what a poll reads and writes: events (and the versions of
// those already held), projects and their sync state.
type SyncStore interface {
	store.EventStore
	store.ProjectStore
}

// ProcessStore is the poller's store: what a sync writes, and the
// webhook deliveries beside it. A poll itself uses SyncStore; the
// converter takes ConvertStore.
type ProcessStore interface {
	store.DeliveryStore
	SyncStore
}
