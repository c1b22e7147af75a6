package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/store"
)

// Converter defaults.
const (
	// DefaultConvertBatch is how many deliveries one transaction converts.
	DefaultConvertBatch = 256
	// DefaultConvertEvery is how often the converter looks for pending
	// deliveries without being woken: those left by a crash, or stored by
	// another replica whose converter stopped.
	DefaultConvertEvery = 2 * time.Second
	// DefaultConvertGather is how long the converter, woken by a new
	// delivery, waits for more before it converts: each batch costs a
	// transaction and its statements, so a burst converts in a few large
	// batches instead of many of a delivery or two.
	DefaultConvertGather = 10 * time.Millisecond
	// DefaultConvertBytes bounds the payloads one batch reads: 256 job
	// hooks are a few megabytes, but 256 of GitLab's largest (25 MB) would
	// be gigabytes.
	DefaultConvertBytes = 32 << 20
	// MaxConvertAttempts is how many times a delivery is tried when its
	// conversion fails for a reason that may pass (the database busy or
	// unreachable) before it is kept as failed.
	MaxConvertAttempts = 5
	// FutureSkew is how far after its delivery's arrival a payload's
	// updated_at or created_at may be; later is a time in the future,
	// refused.
	FutureSkew = 5 * time.Minute
)

// ConvertStore is what the converter needs: the deliveries, converted in
// batches, and the stored projects (which are synced, and their default
// branches).
type ConvertStore interface {
	store.DeliveryStore
	store.DeliveryConverter
	Projects(ctx context.Context) ([]store.Project, error)
}

// Healer schedules a project's sync a little later, for a payload that
// lacks what the poller fetches (approvals, diffs, jobs); the job queue
// implements it, once for a burst of hooks.
type Healer interface {
	HealProject(ctx context.Context, projectID int64, path string) error
}

// Converter turns stored webhook deliveries into events, many in one
// transaction, on its own goroutine: a burst of webhooks or a long sync
// never waits for the other. It implements Enqueuer (EnqueueDelivery only
// wakes it) and runs in every serve replica; on PostgreSQL the replicas
// split the pending deliveries between them.
type Converter struct {
	Store ConvertStore
	// Branches are the branches whose commits are kept (empty: each
	// project's default branch), as for the poller.
	Branches []string
	// Selection is the poller's: a delivery for a project it does not
	// select (and that is not stored) is kept as ignored.
	Selection gitlab.Selection
	Heal      Healer // may be nil
	Log       *slog.Logger
	// Batch is how many deliveries one transaction takes; default
	// DefaultConvertBatch. Every is how often it looks without being
	// woken; default DefaultConvertEvery.
	Batch int
	Every time.Duration
	// Gather is how long a wake waits for more deliveries before
	// converting; default DefaultConvertGather, negative for none.
	Gather time.Duration
	// MaxBytes bounds the payloads one batch holds in memory; default
	// DefaultConvertBytes. A delivery larger than it is converted alone.
	MaxBytes int64
	// OnBatch, if set, is called after each batch is stored (tests).
	OnBatch func(store.ConvertResult)
	// Observer, if set, is told each delivery's outcome once it is stored.
	Observer Observer
	// Connections, if set, returns the added connections by name, with
	// what converting their deliveries (ConnectionHeader) needs; one not
	// (or no longer) among them has its deliveries kept as ignored.
	Connections func() map[string]ConnectionScope

	once sync.Once
	wake chan struct{}
}

func (c *Converter) init() {
	c.once.Do(func() { c.wake = make(chan struct{}, 1) })
}

func (c *Converter) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

// EnqueueDelivery implements Enqueuer: it wakes the converter and never
// blocks; the delivery is already stored pending.
func (c *Converter) EnqueueDelivery(context.Context, int64) error {
	c.init()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run converts pending deliveries until ctx ends: whenever woken, and
// every Every. A batch cut off by ctx stores nothing and is converted on
// the next start.
func (c *Converter) Run(ctx context.Context) {
	c.init()
	every := c.Every
	if every <= 0 {
		every = DefaultConvertEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	backoff := time.Duration(0)
	for {
		err := c.Drain(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			backoff = min(max(2*backoff, time.Second), time.Minute)
			c.log().Warn("webhook conversion failed; retrying", "in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			gather := c.Gather
			if gather == 0 {
				gather = DefaultConvertGather
			}
			if gather > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(gather):
				}
			}
		case <-tick.C:
		}
	}
}

// Drain converts batches until none is pending, or one fails: the failed
// batch's deliveries are then converted one at a time, so that only the
// one that fails keeps failing (one more attempt each time; failed after
// MaxConvertAttempts), and the error is returned for Run to back off.
func (c *Converter) Drain(ctx context.Context) error {
	limit := c.Batch
	if limit <= 0 {
		limit = DefaultConvertBatch
	}
	var sc scope
	for {
		maxBytes := c.MaxBytes
		if maxBytes <= 0 {
			maxBytes = DefaultConvertBytes
		}
		res, claimed, err := c.convert(ctx, &sc, store.DeliveryClaim{Limit: limit, MaxBytes: maxBytes})
		if err != nil {
			if ctx.Err() == nil && len(claimed) > 0 {
				c.isolate(ctx, &sc, claimed)
			}
			return err
		}
		if !res.More {
			return nil
		}
	}
}

// Replay converts one delivery again now, whatever its status.
func (c *Converter) Replay(ctx context.Context, id int64) error {
	res, _, err := c.convert(ctx, &scope{}, store.DeliveryClaim{IDs: []int64{id}})
	if err != nil {
		return err
	}
	if len(res.Deliveries) == 0 {
		return fmt.Errorf("delivery %d: %w (or another replica is converting it)", id, store.ErrNotFound)
	}
	return nil
}

// isolate converts claimed deliveries one at a time after their batch
// failed; each that fails alone gets one more attempt recorded.
func (c *Converter) isolate(ctx context.Context, sc *scope, claimed []store.Delivery) {
	for _, d := range claimed {
		_, _, err := c.convert(ctx, sc, store.DeliveryClaim{IDs: []int64{d.ID}})
		if err == nil || ctx.Err() != nil {
			continue
		}
		status := store.DeliveryPending
		if d.Attempts+1 >= MaxConvertAttempts {
			status = store.DeliveryFailed
		}
		// The store may be what failed: then this fails too, and the
		// delivery stays pending for the next round.
		if merr := c.Store.MarkDelivery(context.WithoutCancel(ctx), d.ID, status, err.Error()); merr != nil {
			c.log().Warn("record a failed conversion attempt", "delivery", d.ID, "err", merr)
		} else if status == store.DeliveryFailed {
			c.log().Warn("webhook delivery kept as failed after its attempts", "delivery", d.ID, "attempts", d.Attempts+1, "err", err)
			if c.Observer != nil {
				c.Observer.Webhook(WebhookEventLabel(d.EventType), store.DeliveryFailed)
			}
		}
	}
}

// scope is what converting needs to know of the projects of every
// connection, read before a batch's transaction (which may hold SQLite's
// only writer). One drain reads it once, and again only when it is older
// than scopeMaxAge, not once per batch.
type scope struct {
	read  time.Time
	k     knownProjects
	known map[string]*knownProjects
}

// scopeMaxAge bounds how stale a drain's projects may be: a project the
// poller stores meanwhile is still converted when the selection names it.
const scopeMaxAge = 5 * time.Second

func (c *Converter) refresh(ctx context.Context, sc *scope) error {
	if !sc.read.IsZero() && time.Since(sc.read) < scopeMaxAge {
		return nil
	}
	projects, err := c.Store.Projects(ctx)
	if err != nil {
		return err
	}
	known, err := c.connectionsKnown(ctx)
	if err != nil {
		return err
	}
	*sc = scope{read: time.Now(), k: newKnownProjects(projects, c.Selection, c.Branches), known: known}
	return nil
}

// convert runs one claim through the store and schedules the heal syncs
// its deliveries ask for. claimed are the deliveries the claim took,
// even when storing them failed.
func (c *Converter) convert(ctx context.Context, sc *scope, claim store.DeliveryClaim) (store.ConvertResult, []store.Delivery, error) {
	if err := c.refresh(ctx, sc); err != nil {
		return store.ConvertResult{}, nil, err
	}
	k, known := sc.k, sc.known
	var (
		claimed []store.Delivery
		// heal holds the projects to sync per connection ("" the default).
		heal map[string]map[int64]string
	)
	res, err := c.Store.ConvertDeliveries(ctx, claim, func(ds []store.Delivery) []store.Conversion {
		claimed, heal = ds, map[string]map[int64]string{}
		out := make([]store.Conversion, len(ds))
		for i, d := range ds {
			conn := d.Headers[ConnectionHeader]
			var wh gitlab.Webhook
			if conn != "" {
				out[i], wh = convertForConnection(known, conn, d)
			} else {
				out[i], wh = k.convert(d)
			}
			if out[i].Status == store.DeliveryProcessed && len(wh.NeedsDetails) > 0 && wh.ProjectID > 0 {
				if heal[conn] == nil {
					heal[conn] = map[int64]string{}
				}
				heal[conn][wh.ProjectID] = wh.ProjectPath
			}
		}
		return out
	})
	if err != nil {
		return res, claimed, err
	}
	for i, cv := range res.Conversions {
		if cv.Status == store.DeliveryFailed {
			c.log().Warn("webhook delivery cannot be converted; kept as failed", "delivery", cv.ID,
				"event", res.Deliveries[i].EventType, "reason", cv.Reason)
		}
		if c.Observer != nil {
			c.Observer.Webhook(WebhookEventLabel(res.Deliveries[i].EventType), cv.Status)
		}
	}
	for conn, ps := range heal {
		h, name := c.Heal, store.DefaultConnection
		if conn != "" {
			h, name = known[conn].heal, conn
		}
		if h == nil {
			continue
		}
		for pid, path := range ps {
			if err := h.HealProject(ctx, pid, path); err != nil {
				c.log().Warn("schedule healing sync", "connection", name, "project", path, "err", err)
			}
		}
	}
	if c.OnBatch != nil && len(res.Deliveries) > 0 {
		c.OnBatch(res)
	}
	return res, claimed, nil
}

// ConnectionScope is what converting an added connection's deliveries
// needs: its projects and selection, and the branches kept.
type ConnectionScope struct {
	Projects  store.ProjectStore
	Selection gitlab.Selection
	Branches  []string
	// Heal, if set, syncs a project of the connection whose webhook
	// lacked details (a tag push, say), as Converter.Heal does for the
	// default connection.
	Heal Healer
}

// connectionsKnown reads the projects of every added connection.
func (c *Converter) connectionsKnown(ctx context.Context) (map[string]*knownProjects, error) {
	if c.Connections == nil {
		return nil, nil
	}
	out := map[string]*knownProjects{}
	for name, sc := range c.Connections() {
		ps, err := sc.Projects.Projects(ctx)
		if err != nil {
			return nil, err
		}
		k := newKnownProjects(ps, sc.Selection, sc.Branches)
		k.heal = sc.Heal
		out[name] = &k
	}
	return out, nil
}

// convertForConnection converts a delivery of connection conn: as the
// default connection's, with that connection's projects and selection,
// and the events under its ids.
func convertForConnection(known map[string]*knownProjects, conn string, d store.Delivery) (store.Conversion, gitlab.Webhook) {
	k, ok := known[conn]
	if !ok {
		return store.Conversion{ID: d.ID, Status: store.DeliveryIgnored, Reason: fmt.Sprintf("connection %q is not configured", conn)}, gitlab.Webhook{}
	}
	cv, wh := k.convert(d)
	for i := range cv.Events {
		cv.Events[i].ID = store.ConnectionEventID(conn, cv.Events[i].ID)
	}
	return cv, wh
}

// knownProjects is what converting a batch needs to know of the projects.
type knownProjects struct {
	stored    map[int64]store.Project
	selection gitlab.Selection
	branches  []string
	heal      Healer // an added connection's (ConnectionScope.Heal)
}

func newKnownProjects(ps []store.Project, sel gitlab.Selection, branches []string) knownProjects {
	k := knownProjects{stored: make(map[int64]store.Project, len(ps)), selection: sel, branches: branches}
	for _, p := range ps {
		k.stored[p.ID] = p
	}
	return k
}

// convert turns one delivery into its conversion: no I/O, the same
// answer every time.
func (k knownProjects) convert(d store.Delivery) (store.Conversion, gitlab.Webhook) {
	cv := store.Conversion{ID: d.ID}
	wh, err := gitlab.ParseWebhook(d.EventType, d.Body)
	switch {
	case errors.Is(err, gitlab.ErrUnknownEvent):
		cv.Status = store.DeliveryStoredRaw
		return cv, wh
	case err != nil:
		// Malformed for its type: trying again will not help.
		cv.Status, cv.Reason = store.DeliveryFailed, err.Error()
		return cv, wh
	}
	if why := k.notSelected(wh); why != "" {
		cv.Status, cv.Reason = store.DeliveryIgnored, why
		return cv, wh
	}
	if len(wh.Events) == 0 && len(wh.NeedsDetails) == 0 {
		// A type labtrail keeps but does not convert (wiki, emoji, ...).
		cv.Status = store.DeliveryStoredRaw
		return cv, wh
	}
	events := syncedCommitsOnly(wh, k.keptBranches(wh.ProjectID))
	for i := range events {
		e := &events[i]
		e.ObservedAt = d.ReceivedAt
		for _, t := range []struct {
			name string
			at   time.Time
		}{{"updated_at", e.UpdatedAt}, {"created_at", e.CreatedAt}} {
			if t.at.After(d.ReceivedAt.Add(FutureSkew)) {
				cv.Status = store.DeliveryFailed
				cv.Reason = fmt.Sprintf("event %s: %s %s is more than %s after the delivery arrived (%s): a time in the future",
					e.ID, t.name, t.at.UTC().Format(time.RFC3339), FutureSkew, d.ReceivedAt.UTC().Format(time.RFC3339))
				return cv, wh
			}
		}
	}
	if len(events) == 0 && len(wh.NeedsDetails) == 0 {
		cv.Status, cv.Reason = store.DeliveryIgnored, "only commits on branches labtrail does not sync"
		return cv, wh
	}
	// Events made, or a sync scheduled for what the payload lacks (a tag
	// push, say): both are the delivery processed.
	cv.Status, cv.Events = store.DeliveryProcessed, events
	return cv, wh
}

// notSelected says why labtrail does not sync the delivery's project, or
// "" when it does (or cannot tell: an event without a project, a
// selection by membership or by a numeric group id). A project under a
// selected group is selected even before the poller has stored it, so
// one that joins the group is accepted at once.
func (k knownProjects) notSelected(wh gitlab.Webhook) string {
	if wh.ProjectID == 0 {
		return ""
	}
	if _, ok := k.stored[wh.ProjectID]; ok {
		return ""
	}
	sel := k.selection
	if len(sel.Repos) == 0 && len(sel.Groups) == 0 {
		return ""
	}
	path := strings.Trim(wh.ProjectPath, "/")
	for _, r := range sel.Repos {
		r = strings.Trim(strings.TrimSpace(r), "/")
		if r == strconv.FormatInt(wh.ProjectID, 10) || (path != "" && strings.EqualFold(r, path)) {
			return ""
		}
	}
	for _, g := range sel.Groups {
		g = strings.Trim(strings.TrimSpace(g), "/")
		if g == "" {
			continue
		}
		if _, err := strconv.ParseInt(g, 10, 64); err == nil || path == "" {
			return "" // a group by id, or a project without its path: cannot tell
		}
		if len(path) > len(g) && strings.EqualFold(path[:len(g)], g) && path[len(g)] == '/' {
			return ""
		}
	}
	name := path
	if name == "" {
		name = "id " + strconv.FormatInt(wh.ProjectID, 10)
	}
	return fmt.Sprintf("project %s is not synced: it is neither a selected project nor in a selected group", name)
}

// keptBranches are the branches whose commits are kept for a project: the
// configured ones, else its default branch, else main and master (a
// project not synced yet).
func (k knownProjects) keptBranches(projectID int64) map[string]bool {
	keep := map[string]bool{}
	for _, b := range k.branches {
		keep[b] = true
	}
	if len(keep) > 0 {
		return keep
	}
	if p, ok := k.stored[projectID]; ok && p.DefaultBranch != "" {
		keep[p.DefaultBranch] = true
		return keep
	}
	keep["main"], keep["master"] = true, true
	return keep
}

// syncedCommitsOnly drops commit events pushed to branches labtrail does
// not sync, as the poller keeps them, so both ways in agree on what
// history holds.
func syncedCommitsOnly(wh gitlab.Webhook, keep map[string]bool) []change.Event {
	out := make([]change.Event, 0, len(wh.Events))
	for _, e := range wh.Events {
		if e.Kind == change.KindCommit {
			if b, _ := e.Attrs["branch"].(string); !keep[b] {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}
