package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/store"
)

// ProcessDelivery converts one stored delivery into events and stores them.
// It is idempotent: processing a delivery twice changes nothing the second
// time. Types labtrail does not convert are kept raw. Commits are kept only
// for the synced branches (branches; empty: the project's default branch),
// as the poller keeps them, so both ways in agree on what history holds.
func ProcessDelivery(ctx context.Context, st ProcessStore, id int64, branches []string) (res WebhookResult, err error) {
	d, err := st.Delivery(ctx, id)
	if err != nil {
		return res, err
	}
	wh, perr := gitlab.ParseWebhook(d.EventType, d.Body)
	switch {
	case errors.Is(perr, gitlab.ErrUnknownEvent):
		return WebhookResult{Delivery: d}, st.MarkDelivery(ctx, id, store.DeliveryStoredRaw, "")
	case perr != nil:
		// Malformed for its type: retrying will not help.
		if err := st.MarkDelivery(ctx, id, store.DeliveryFailed, perr.Error()); err != nil {
			return WebhookResult{Delivery: d}, err
		}
		return WebhookResult{Delivery: d}, fmt.Errorf("%w: %v", errUnprocessable, perr)
	}
	if wh.Events, err = syncedCommitsOnly(ctx, st, wh, branches); err != nil {
		return res, err
	}
	res = WebhookResult{Delivery: d, Webhook: wh}
	if len(wh.Events) == 0 {
		return res, st.MarkDelivery(ctx, id, store.DeliveryStoredRaw, "")
	}
	if res.Upsert, err = st.Upsert(ctx, wh.Events...); err != nil {
		return res, fmt.Errorf("store events of delivery %d: %w", id, err)
	}
	return res, st.MarkDelivery(ctx, id, store.DeliveryProcessed, "")
}

// WebhookResult is what processing one delivery did.
type WebhookResult struct {
	Delivery store.Delivery
	Webhook  gitlab.Webhook
	Upsert   store.UpsertResult
}

var errUnprocessable = errors.New("delivery cannot be converted")

// Unprocessable reports whether err means retrying the delivery is futile.
func Unprocessable(err error) bool { return errors.Is(err, errUnprocessable) }

// syncedCommitsOnly drops commit events pushed to branches labtrail does
// not sync.
func syncedCommitsOnly(ctx context.Context, st store.ProjectStore, wh gitlab.Webhook, branches []string) ([]change.Event, error) {
	hasCommits := false
	for _, e := range wh.Events {
		hasCommits = hasCommits || e.Kind == change.KindCommit
	}
	if !hasCommits {
		return wh.Events, nil
	}
	keep := map[string]bool{}
	for _, b := range branches {
		keep[b] = true
	}
	if len(keep) == 0 {
		ps, err := st.Projects(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if p.ID == wh.ProjectID && p.DefaultBranch != "" {
				keep[p.DefaultBranch] = true
			}
		}
		if len(keep) == 0 {
			keep["main"], keep["master"] = true, true // a project not synced yet
		}
	}
	out := wh.Events[:0:0]
	for _, e := range wh.Events {
		if e.Kind == change.KindCommit {
			if b, _ := e.Attrs["branch"].(string); !keep[b] {
				continue
			}
		}
		out = append(out, e)
	}
	return out, nil
}
