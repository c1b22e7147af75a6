package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// ArchiveStore is what exports, imports and retention need beyond the
// other roles (issue 16): events with their timelines by filter, the
// export state of each kind's UTC days, and deleting old data in batches.
type ArchiveStore interface {
	// ListHistories is List with each event's timeline (oldest first),
	// read from one snapshot, attribute numbers exactly as stored (as
	// ExportEvents). Paging and errors are List's.
	ListHistories(ctx context.Context, f Filter) (HistoryPage, error)
	// ExportDays lists the export state of kinds' UTC days, oldest day
	// first, then by kind.
	ExportDays(ctx context.Context, f ExportDayFilter) ([]ExportDay, error)
	// MarkExported records that d.Version of d's kind and day is exported
	// as described by d's Events, Bytes, SHA256 and ExportedAt. It
	// returns ErrNotFound for a day the store does not track.
	MarkExported(ctx context.Context, d ExportDay) error
	// PruneEvents deletes up to p.Limit events (their timelines with
	// them) of p.Kind that occurred before p.Before, oldest first, and
	// says how many. With p.ExportedOnly, events of a day whose current
	// version is not exported are kept, and so is every later one.
	PruneEvents(ctx context.Context, p Prune) (int, error)
	// PruneDeliveryBodies empties the bodies of up to limit webhook
	// deliveries received before before that are no longer pending; the
	// rows (and so GitLab's retries being recognised) stay.
	PruneDeliveryBodies(ctx context.Context, before time.Time, limit int) (int, error)
}

// HistoryPage is one page of ListHistories.
type HistoryPage struct {
	Histories  []History
	NextCursor string
}

// ExportDay is one kind's events of one UTC day (by occurred_at) and what
// the S3 export holds of them. The store bumps Version whenever an event
// of the day, or its timeline, changes; the day is pending while Version
// differs from ExportedVersion.
type ExportDay struct {
	Kind            change.Kind
	Day             time.Time // 00:00 UTC
	Version         int64
	ExportedVersion int64 // 0: never exported
	ExportedAt      time.Time
	Events          int64  // lines of the exported object
	Bytes           int64  // size of the exported object
	SHA256          string // hex SHA-256 of the exported object
	Rewrites        int64  // exports after the first
	// Pruned says retention deleted events of the day: the store no
	// longer holds all the export does.
	Pruned bool
}

// Pending reports whether the day changed since it was last exported.
func (d ExportDay) Pending() bool { return d.Version != d.ExportedVersion }

// ExportDayFilter selects export days. Zero fields do not filter.
type ExportDayFilter struct {
	Day         time.Time // that day only (00:00 UTC)
	Before      time.Time // days ending at or before it
	PendingOnly bool
	Limit       int // 1..MaxLimit; 0 means DefaultLimit
}

// Prune is what PruneEvents deletes.
type Prune struct {
	Kind         change.Kind
	Before       time.Time
	ExportedOnly bool
	Limit        int // 1..MaxLimit; 0 means DefaultLimit
}

// UTCDay is the start of t's UTC day.
func UTCDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

const exportDayColumns = `kind, day_start, version, exported_version, exported_at, events, bytes, sha256, rewrites, pruned`

// ListHistories implements ArchiveStore.
func (s SQL[T]) ListHistories(ctx context.Context, f Filter) (HistoryPage, error) {
	if err := s.check([]string{"since", "until"}, f.Since, f.Until); err != nil {
		return HistoryPage{}, s.errorf("list histories: %w", err)
	}
	l, err := s.Dialect.ListEvents(f)
	if err != nil {
		return HistoryPage{}, s.errorf("list histories: %w", err)
	}
	var (
		page Page
		tl   []change.TimelineEntry
	)
	err = s.Snapshot(ctx, func(q Querier) error {
		es, err := rowsOf(ctx, q, l.SQL, l.Args, s.Scan.ExactEvent)
		if err != nil {
			return err
		}
		page = l.EventPage(es)
		if len(page.Events) == 0 {
			return nil
		}
		tq := s.Dialect.Query()
		ids := make([]any, len(page.Events))
		for i, e := range page.Events {
			ids[i] = e.ID
		}
		tq.AnyOf("event_id", ids)
		tl, err = rowsOf(ctx, q, `SELECT event_id, state, at, source FROM timeline`+tq.WhereSQL()+
			` ORDER BY event_id, at, seq`, tq.Args(), s.Scan.Timeline)
		return err
	})
	if err != nil {
		return HistoryPage{}, s.errorf("list histories: %w", err)
	}
	return HistoryPage{Histories: Histories(page.Events, tl), NextCursor: page.NextCursor}, nil
}

// ExportDays implements ArchiveStore.
func (s SQL[T]) ExportDays(ctx context.Context, f ExportDayFilter) ([]ExportDay, error) {
	lim, err := PageLimit(f.Limit)
	if err != nil {
		return nil, s.errorf("export days: %w", err)
	}
	q := s.Dialect.Query()
	if !f.Day.IsZero() {
		q.Where("day_start = ?", s.Dialect.Time(f.Day))
	}
	if !f.Before.IsZero() {
		q.Where("day_end <= ?", s.Dialect.Time(f.Before))
	}
	if f.PendingOnly {
		q.Where("version <> exported_version")
	}
	stmt := `SELECT ` + exportDayColumns + ` FROM export_days` + q.WhereSQL() +
		` ORDER BY day_start, kind LIMIT ` + q.Arg(lim)
	out, err := rowsOf(ctx, s.Query, stmt, q.Args(), func(r Row) (ExportDay, error) {
		var (
			d        ExportDay
			kind     string
			day, exp T
		)
		err := r.Scan(&kind, &day, &d.Version, &d.ExportedVersion, &exp, &d.Events, &d.Bytes, &d.SHA256, &d.Rewrites, &d.Pruned)
		d.Kind, d.Day, d.ExportedAt = change.Kind(kind), s.Scan.From(day), s.Scan.From(exp)
		return d, err
	})
	if err != nil {
		return nil, s.errorf("export days: %w", err)
	}
	return out, nil
}

// MarkExported implements ArchiveStore.
func (s SQL[T]) MarkExported(ctx context.Context, d ExportDay) error {
	if err := s.check([]string{"day", "exported_at"}, d.Day, d.ExportedAt); err != nil {
		return s.errorf("mark exported: %w", err)
	}
	q := s.Dialect.Query()
	set := []string{
		"exported_version = " + q.Arg(d.Version),
		"exported_at = " + q.Arg(s.Dialect.Time(d.ExportedAt)),
		"events = " + q.Arg(d.Events),
		"bytes = " + q.Arg(d.Bytes),
		"sha256 = " + q.Arg(d.SHA256),
		// The right-hand side reads the row before this update.
		"rewrites = rewrites + CASE WHEN exported_version > 0 THEN 1 ELSE 0 END",
	}
	q.Where("kind = ? AND day_start = ?", string(d.Kind), s.Dialect.Time(d.Day))
	n, err := s.Exec(ctx, `UPDATE export_days SET `+strings.Join(set, ", ")+q.WhereSQL(), q.Args())
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return s.errorf("mark exported %s %s: %w", d.Kind, d.Day.Format(time.DateOnly), err)
	}
	return nil
}

// PruneEvents implements ArchiveStore.
func (s SQL[T]) PruneEvents(ctx context.Context, p Prune) (int, error) {
	lim, err := PageLimit(p.Limit)
	if err != nil {
		return 0, s.errorf("prune events: %w", err)
	}
	if p.Before.IsZero() || !p.Kind.Valid() {
		return 0, s.errorf("prune events: %w", errors.New("a kind and a time are required"))
	}
	if err := s.check([]string{"before"}, p.Before); err != nil {
		return 0, s.errorf("prune events: %w", err)
	}
	before := s.Dialect.Time(p.Before)
	// Marked first: a day pruned in part must never be rewritten from the
	// store alone.
	mark := s.Dialect.Query()
	mark.Where("kind = ? AND day_start < ?", string(p.Kind), before)
	if p.ExportedOnly {
		mark.Where("version = exported_version")
	}
	if _, err := s.Exec(ctx, `UPDATE export_days SET pruned = TRUE`+mark.WhereSQL(), mark.Args()); err != nil {
		return 0, s.errorf("prune events: %w", err)
	}
	q := s.Dialect.Query()
	q.Where("kind = ? AND occurred_at < ?", string(p.Kind), before)
	if p.ExportedOnly {
		// One statement: the oldest pending day is read in the same
		// moment as the rows deleted.
		q.Where("occurred_at < COALESCE((SELECT MIN(day_start) FROM export_days WHERE kind = ? AND version <> exported_version), ?)",
			string(p.Kind), before)
	}
	stmt := `DELETE FROM events WHERE id IN (SELECT id FROM events` + q.WhereSQL() +
		` ORDER BY occurred_at, id LIMIT ` + q.Arg(lim) + `)`
	n, err := s.Exec(ctx, stmt, q.Args())
	if err != nil {
		return 0, s.errorf("prune events: %w", err)
	}
	return n, nil
}

// PruneDeliveryBodies implements ArchiveStore.
func (s SQL[T]) PruneDeliveryBodies(ctx context.Context, before time.Time, limit int) (int, error) {
	lim, err := PageLimit(limit)
	if err != nil {
		return 0, s.errorf("prune delivery bodies: %w", err)
	}
	if err := s.check([]string{"before"}, before); err != nil {
		return 0, s.errorf("prune delivery bodies: %w", err)
	}
	q := s.Dialect.Query()
	q.Where("received_at < ? AND status <> ?", s.Dialect.Time(before), DeliveryPending)
	q.Where("length(body) > 0")
	empty := q.Arg([]byte{})
	stmt := `UPDATE deliveries SET body = ` + empty + ` WHERE id IN (SELECT id FROM deliveries` + q.WhereSQL() +
		` ORDER BY id LIMIT ` + q.Arg(lim) + `)`
	n, err := s.Exec(ctx, stmt, q.Args())
	if err != nil {
		return 0, s.errorf("prune delivery bodies: %w", err)
	}
	return n, nil
}
