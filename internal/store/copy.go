package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// Tables are what Copy moves and Checksums covers, in the order Copy moves
// them: sync states last, so that a copy cut short never leaves a cursor
// ahead of the events it covers in the destination.
var Tables = []string{"projects", "events", "timeline", "deliveries", "audit", "sync_state"}

// TableSum is one table's row count and checksum.
type TableSum struct {
	Table string
	Count int64
	// Sum is the hex SHA-256 of the table's rows in a canonical order and
	// encoding, the same for every backend: times to the microsecond (the
	// coarsest backend's precision) in UTC, attribute numbers as exact
	// rationals, delivery bodies by their SHA-256.
	Sum string
}

// CopyProgress reports a copy or checksum as it goes.
type CopyProgress struct {
	Table   string
	Read    int64 // rows read from the source so far
	Written int64 // rows the destination did not already hold
	Total   int64 // rows to read, -1 when not known in advance
}

// CopyStore is what Copy and Checksums read and write: every table through
// the export and import of PortStore, projects and sync states through
// ProjectStore, and the event count for progress. Every Core is one; the
// added connections' tables (ConnectionTables) are covered only when the
// store is a ConnectionStore too, and copied only when both stores are.
type CopyStore interface {
	PortStore
	ProjectStore
	Count(ctx context.Context, kind change.Kind) (int, error)
}

// connCopyStore is a CopyStore that keeps added connections.
type connCopyStore interface {
	CopyStore
	ConnectionStore
}

// Page sizes of the walk: deliveries carry their bodies.
const (
	eventsPage     = 500
	deliveriesPage = 100
	auditPage      = MaxLimit
)

// Checksums reads the whole of s and returns each table's count and
// checksum, in the order of Tables.
func Checksums(ctx context.Context, s CopyStore, progress func(CopyProgress)) ([]TableSum, error) {
	return walk(ctx, s, nil, progress)
}

// Copy copies everything src holds into dst, table by table, and returns
// the source's counts and checksums (computed while reading) and the rows
// written per table. It is safe to run again: rows dst already holds are
// left alone (events by the Upsert rule, deliveries and audit entries by
// id), so a second run writes nothing. Compare the result with
// Checksums(dst) to know the copy is complete.
func Copy(ctx context.Context, dst, src CopyStore, progress func(CopyProgress)) (sums []TableSum, written map[string]int64, err error) {
	written = map[string]int64{}
	sums, err = walk(ctx, src, &copier{dst: dst, written: written}, progress)
	return sums, written, err
}

// copier writes what walk reads into dst.
type copier struct {
	dst     CopyStore
	written map[string]int64
}

// walker is one Checksums or Copy under way.
type walker struct {
	c        *copier // nil for Checksums
	sums     map[string]*summer
	progress func(CopyProgress)
}

func (w *walker) report(table string, read, total int64) {
	var n int64
	if w.c != nil {
		n = w.c.written[table]
	}
	w.progress(CopyProgress{Table: table, Read: read, Written: n, Total: total})
}

// walk reads every table of s, hashing it; with c, what it reads is also
// written to c.dst, each page before the next is read.
func walk(ctx context.Context, s CopyStore, c *copier, progress func(CopyProgress)) ([]TableSum, error) {
	if progress == nil {
		progress = func(CopyProgress) {}
	}
	w := &walker{c: c, sums: map[string]*summer{}, progress: progress}
	for _, t := range Tables {
		w.sums[t] = newSummer()
	}

	ps, err := s.Projects(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ps, func(a, b Project) int { return cmp.Compare(a.ID, b.ID) })
	err = whole(ctx, w, "projects", ps, projectRecord, ProjectStore.Projects, func(ctx context.Context, dst CopyStore, put []Project) error {
		return dst.PutProjects(ctx, put...)
	})
	if err != nil {
		return nil, err
	}

	total, err := s.Count(ctx, "")
	if err != nil {
		return nil, err
	}
	err = paged(ctx, w, "events", "", eventsPage, s.ExportEvents,
		func(h History) string { return h.Event.ID },
		func(read int64) int64 { return max(int64(total), read) },
		func(h History) {
			w.sums["events"].add(eventRecord(h.Event))
			for _, t := range h.Timeline {
				w.sums["timeline"].add(timelineRecord(h.Event.ID, t))
			}
		},
		func(ctx context.Context, dst CopyStore, hs []History) error {
			r, err := dst.ImportEvents(ctx, hs...)
			c.written["events"] += int64(r.Events)
			c.written["timeline"] += int64(r.Timeline)
			return err
		})
	if err != nil {
		return nil, err
	}

	err = byID(ctx, w, "deliveries", deliveriesPage, s.ExportDeliveries, func(d Delivery) int64 { return d.ID },
		deliveryRecord, CopyStore.ImportDeliveries)
	if err != nil {
		return nil, err
	}
	err = byID(ctx, w, "audit", auditPage, s.ExportAudit, func(e AuditEntry) int64 { return e.ID },
		auditRecord, CopyStore.ImportAudit)
	if err != nil {
		return nil, err
	}

	// Sync states (cursors) last.
	states, err := s.SyncStates(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(states, func(a, b SyncState) int {
		if a.ProjectID != b.ProjectID {
			return cmp.Compare(a.ProjectID, b.ProjectID)
		}
		return cmp.Compare(string(a.Kind), string(b.Kind))
	})
	err = whole(ctx, w, "sync_state", states, syncRecord, ProjectStore.SyncStates, func(ctx context.Context, dst CopyStore, put []SyncState) error {
		for _, st := range put {
			if err := dst.PutSyncState(ctx, st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	tables := slices.Clone(Tables)
	if cs, ok := s.(connCopyStore); ok {
		dstHas := true
		if c != nil {
			_, dstHas = c.dst.(connCopyStore)
		}
		if dstHas {
			if err := walkConnections(ctx, w, cs); err != nil {
				return nil, err
			}
			tables = append(tables, ConnectionTables...)
		}
	}
	out := make([]TableSum, 0, len(tables))
	for _, t := range tables {
		out = append(out, TableSum{Table: t, Count: w.sums[t].n, Sum: hex.EncodeToString(w.sums[t].h.Sum(nil))})
	}
	return out, nil
}

// whole hashes a table read at once (rows in canonical order); copying,
// it puts the rows whose record the destination does not hold.
func whole[T any](ctx context.Context, w *walker, table string, rows []T, record func(T) []byte,
	have func(ProjectStore, context.Context) ([]T, error), put func(context.Context, CopyStore, []T) error) error {
	for _, r := range rows {
		w.sums[table].add(record(r))
	}
	if w.c != nil {
		held, err := have(w.c.dst, ctx)
		if err != nil {
			return err
		}
		same := map[string]bool{}
		for _, r := range held {
			same[string(record(r))] = true
		}
		var missing []T
		for _, r := range rows {
			if !same[string(record(r))] {
				missing = append(missing, r)
			}
		}
		if err := put(ctx, w.c.dst, missing); err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
		w.c.written[table] += int64(len(missing))
	}
	w.report(table, int64(len(rows)), int64(len(rows)))
	return nil
}

// byID is paged for a table exported by id and imported with its ids.
func byID[T any](ctx context.Context, w *walker, table string, size int, export func(context.Context, int64, int) ([]T, error),
	id func(T) int64, record func(T) []byte, imp func(CopyStore, context.Context, ...T) (int, error)) error {
	return paged(ctx, w, table, 0, size, export, id, func(int64) int64 { return -1 },
		func(r T) { w.sums[table].add(record(r)) },
		func(ctx context.Context, dst CopyStore, rows []T) error {
			n, err := imp(dst, ctx, rows...)
			w.c.written[table] += int64(n)
			return err
		})
}

// paged reads a table page by page through export, from after on, hashing
// each row with sum; copying, it imports each page into the destination
// before reading the next. key is the position a row leaves the export at.
func paged[K any, T any](ctx context.Context, w *walker, table string, after K, size int,
	export func(context.Context, K, int) ([]T, error), key func(T) K, total func(read int64) int64,
	sum func(T), imp func(context.Context, CopyStore, []T) error) error {
	var read int64
	for {
		rows, err := export(ctx, after, size)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			sum(r)
		}
		if w.c != nil {
			if err := imp(ctx, w.c.dst, rows); err != nil {
				return fmt.Errorf("copy %s after %v: %w", table, after, err)
			}
		}
		read += int64(len(rows))
		after = key(rows[len(rows)-1])
		w.report(table, read, total(read))
	}
	w.report(table, read, read)
	return nil
}

// summer hashes a table's canonical records, each length-prefixed so that
// no two sequences of records hash alike by running into each other.
type summer struct {
	h hash.Hash
	n int64
}

func newSummer() *summer { return &summer{h: sha256.New()} }

func (s *summer) add(rec []byte) {
	s.h.Write([]byte(strconv.Itoa(len(rec))))
	s.h.Write([]byte{':'})
	s.h.Write(rec)
	s.n++
}

// canonTime is t as every backend can hold it: UTC, microseconds, "" for
// the zero time.
func canonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}

// record is the canonical encoding of a row: a JSON array of its fields.
func record(fields ...any) []byte {
	b, err := json.Marshal(fields)
	if err != nil {
		// Strings, numbers and bools only: cannot fail.
		panic(err)
	}
	return b
}

func projectRecord(p Project) []byte {
	return record(p.ID, p.Path, p.Name, p.WebURL, p.DefaultBranch, p.Archived, canonTime(p.LastActivityAt),
		p.Status, p.StatusDetail, canonTime(p.StatusAt))
}

func syncRecord(s SyncState) []byte {
	return record(s.ProjectID, string(s.Kind), s.ProjectPath, canonTime(s.Cursor), canonTime(s.LastRunAt),
		canonTime(s.LastSuccess), s.Fetched, s.Stored, s.LastError)
}

func eventRecord(e change.Event) []byte {
	var attrs bytes.Buffer
	if len(e.Attrs) > 0 {
		canonValue(&attrs, e.Attrs)
	}
	return record(e.ID, string(e.Kind), e.ProjectID, e.ProjectPath, e.Title, e.State, e.Author, e.WebURL,
		e.Ref, e.SHA, canonTime(e.CreatedAt), canonTime(e.UpdatedAt), canonTime(e.OccurredAt), string(e.Source),
		attrs.String())
}

func timelineRecord(id string, t change.TimelineEntry) []byte {
	return record(id, t.State, canonTime(t.At), string(t.Source))
}

func deliveryRecord(d Delivery) []byte {
	headers, _ := json.Marshal(d.Headers) // sorted keys
	if len(d.Headers) == 0 {
		headers = []byte("{}")
	}
	body := sha256.Sum256(d.Body)
	return record(d.ID, d.IdempotencyKey, d.EventType, d.EventUUID, d.WebhookUUID, string(headers),
		hex.EncodeToString(body[:]), canonTime(d.ReceivedAt), d.Status, d.Attempts, d.LastError, canonTime(d.ProcessedAt))
}

func auditRecord(e AuditEntry) []byte {
	return record(e.ID, canonTime(e.Time), e.Method, e.Path, e.Status, int64(e.Duration), e.RateLimitRemaining, e.Job, e.Error)
}

// canonValue writes decoded JSON canonically: object keys sorted, numbers
// as exact rationals (so 1e+21 from Go and 1000000000000000000000 from
// PostgreSQL's jsonb, or 1.50 and 1.5, are the same number).
func canonValue(w *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		w.WriteString("null")
	case bool:
		w.WriteString(strconv.FormatBool(x))
	case string:
		b, _ := json.Marshal(x)
		w.Write(b)
	case json.Number:
		canonNumber(w, string(x))
	case float64:
		canonNumber(w, strconv.FormatFloat(x, 'g', -1, 64))
	case int:
		canonNumber(w, strconv.Itoa(x))
	case int64:
		canonNumber(w, strconv.FormatInt(x, 10))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				w.WriteByte(',')
			}
			b, _ := json.Marshal(k)
			w.Write(b)
			w.WriteByte(':')
			canonValue(w, x[k])
		}
		w.WriteByte('}')
	case []any:
		w.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				w.WriteByte(',')
			}
			canonValue(w, e)
		}
		w.WriteByte(']')
	default:
		// Not from decoded JSON; Go's encoding is canonical enough.
		b, _ := json.Marshal(x)
		w.Write(b)
	}
}

func canonNumber(w *bytes.Buffer, s string) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		w.WriteString("n?" + s)
		return
	}
	w.WriteString("n" + r.RatString())
}
