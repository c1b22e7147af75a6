package export

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Retention is how long events are kept: All for every kind, Kinds for
// those named (it wins over All). Zero keeps forever.
type Retention struct {
	All   time.Duration
	Kinds map[change.Kind]time.Duration
}

// ParseRetention reads LABTRAIL_RETENTION: comma-separated durations, one
// bare (every kind) and any number of kind=duration, e.g.
// "720h,job=168h". Durations are Go's (h, m, s); a day is "24h".
func ParseRetention(s string) (Retention, error) {
	var r Retention
	bare := false
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, dur, hasKind := strings.Cut(part, "=")
		if !hasKind {
			dur, kind = kind, ""
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 {
			return Retention{}, fmt.Errorf("retention %q: %q is not a positive duration such as 720h", part, dur)
		}
		if !hasKind {
			if bare {
				return Retention{}, fmt.Errorf("retention %q: two durations for every kind", s)
			}
			bare, r.All = true, d
			continue
		}
		k, err := change.ParseKind(strings.TrimSpace(kind))
		if err != nil {
			return Retention{}, fmt.Errorf("retention %q: %w", part, err)
		}
		if _, dup := r.Kinds[k]; dup {
			return Retention{}, fmt.Errorf("retention %q: %s given twice", s, k)
		}
		if r.Kinds == nil {
			r.Kinds = map[change.Kind]time.Duration{}
		}
		r.Kinds[k] = d
	}
	return r, nil
}

// For is how long events of kind k are kept; zero: forever.
func (r Retention) For(k change.Kind) time.Duration {
	if d, ok := r.Kinds[k]; ok {
		return d
	}
	return r.All
}

// Zero reports whether r keeps everything forever.
func (r Retention) Zero() bool { return r.All == 0 && len(r.Kinds) == 0 }

// Pruner is what retention deletes from.
type Pruner interface {
	PruneEvents(ctx context.Context, p store.Prune) (int, error)
	PruneDeliveryBodies(ctx context.Context, before time.Time, limit int) (int, error)
}

// PruneResult counts what one run of retention deleted.
type PruneResult struct {
	Events         map[change.Kind]int
	DeliveryBodies int
}

// pruneBatch is how many rows one delete statement takes: short
// transactions that never hold the writer for long.
const pruneBatch = 1000

// Prune deletes, in batches, the events older than r allows (cut at the
// start of a UTC day, so a day goes whole: a day the export holds is
// never left half in the store) and the bodies of webhook deliveries
// received more than bodies ago (zero: kept). With exportedOnly (an S3
// export is configured) no event of a day not yet exported is deleted.
func Prune(ctx context.Context, p Pruner, r Retention, bodies time.Duration, exportedOnly bool, now time.Time) (PruneResult, error) {
	res := PruneResult{Events: map[change.Kind]int{}}
	for _, k := range change.Kinds {
		keep := r.For(k)
		if keep <= 0 {
			continue
		}
		prune := store.Prune{Kind: k, Before: store.UTCDay(now.Add(-keep)), ExportedOnly: exportedOnly, Limit: pruneBatch}
		n, err := batches(func() (int, error) { return p.PruneEvents(ctx, prune) })
		res.Events[k] = n
		if err != nil {
			return res, err
		}
	}
	if bodies > 0 {
		var err error
		res.DeliveryBodies, err = batches(func() (int, error) { return p.PruneDeliveryBodies(ctx, now.Add(-bodies), pruneBatch) })
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// batches runs one batch after another until one is not full, and sums
// them.
func batches(batch func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := batch()
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}
