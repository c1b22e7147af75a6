package ingest

import "github.com/labtrail/labtrail/internal/store"

// SyncStore is what a poll reads and writes: events (and the versions of
// those already held), projects and their sync state.
type SyncStore interface {
	store.EventStore
	store.ProjectStore
}

// ProcessStore is what converting a stored webhook delivery needs: the
// delivery itself, and what a sync writes (the projects tell which
// branches are synced). Poller.Store is one because the job queue converts
// deliveries through the poller's store; a poll itself uses SyncStore.
type ProcessStore interface {
	store.DeliveryStore
	SyncStore
}
