package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/store"
)

// AuditLog records every GitLab API call in the store. The client reports
// calls synchronously on its request path, so Record only buffers; Run
// writes the buffer in batches and prunes entries past the retention.
type AuditLog struct {
	store     store.AuditStore
	retention time.Duration
	log       *slog.Logger

	mu      sync.Mutex
	pending []store.AuditEntry
	wake    chan struct{}
	obs     Observer
}

// NewAuditLog keeps entries for retention (0: forever).
func NewAuditLog(st store.AuditStore, retention time.Duration, log *slog.Logger) *AuditLog {
	if log == nil {
		log = slog.Default()
	}
	return &AuditLog{store: st, retention: retention, log: log, wake: make(chan struct{}, 1)}
}

// SetObserver has every call Record sees also told to o. Set it before
// the client that reports to Record is made.
func (a *AuditLog) SetObserver(o Observer) { a.obs = o }

// flushAt is the buffer size that triggers a write before the next tick.
const flushAt = 200

// Record buffers one call; it never blocks on the database.
func (a *AuditLog) Record(r gitlab.AuditRecord) {
	if a.obs != nil {
		a.obs.GitLabCall(r.Status, r.RateLimitRemaining)
	}
	a.mu.Lock()
	a.pending = append(a.pending, store.AuditEntry{
		Time: r.Time.UTC(), Method: r.Method, Path: r.Path, Status: r.Status, Duration: r.Duration,
		RateLimitRemaining: r.RateLimitRemaining, Job: r.Job, Error: r.Err,
	})
	full := len(a.pending) >= flushAt
	a.mu.Unlock()
	if full {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// Flush writes what is buffered. On failure the entries stay buffered for
// the next attempt rather than being lost.
func (a *AuditLog) Flush(ctx context.Context) error {
	a.mu.Lock()
	batch := a.pending
	a.pending = nil
	a.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := a.store.AppendAudit(ctx, batch...); err != nil {
		a.mu.Lock()
		a.pending = append(batch, a.pending...)
		a.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every second (or sooner when the buffer fills) and prunes
// once an hour, until ctx ends; then it flushes one last time.
func (a *AuditLog) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := a.Flush(final); err != nil {
				a.log.Error("audit log: final write failed", "err", err)
			}
			cancel()
			return
		case <-tick.C:
		case <-a.wake:
		}
		if err := a.Flush(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("audit log: write failed; will retry", "err", err)
		}
		if a.retention > 0 && time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			n, err := a.store.PruneAudit(ctx, time.Now().Add(-a.retention))
			if err != nil && ctx.Err() == nil {
				a.log.Error("audit log: prune failed", "err", err)
			} else if n > 0 {
				a.log.Info("audit log pruned", "entries", n, "retention", a.retention)
			}
		}
	}
}

// WithJob labels the GitLab calls made under ctx in the audit log, so each
// call can be traced to the sync job that made it.
func WithJob(ctx context.Context, label string) context.Context { return gitlab.WithJob(ctx, label) }
