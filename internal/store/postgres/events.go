package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

const eventColumns = `id, kind, project_id, project_path, title, state, author, web_url, ref, sha,
	created_at, updated_at, occurred_at, source, attrs`

// upsertLockClass is the first key of the transaction-level advisory locks
// Upsert takes per id (the second is hashtext(id)).
const upsertLockClass = 0x6c74 // "lt"

// normalize truncates e's times as they will be stored, so that comparing and
// hashing see what a later read returns.
func normalize(e change.Event) change.Event {
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = ts(e.CreatedAt), ts(e.UpdatedAt), ts(e.OccurredAt)
	if len(e.Transitions) > 0 {
		t := make([]change.Transition, len(e.Transitions))
		for i, tr := range e.Transitions {
			t[i] = change.Transition{State: tr.State, At: ts(tr.At)}
		}
		e.Transitions = t
	}
	return e
}

// Upsert implements store.Store. Events are applied in order, so a repeated
// id later in the call sees the earlier one.
func (s *Store) Upsert(ctx context.Context, events ...change.Event) (store.UpsertResult, error) {
	var res store.UpsertResult
	if len(events) == 0 {
		return res, nil
	}
	// All of them first: a call with one bad event stores none.
	norm := make([]change.Event, len(events))
	ids := make([]string, 0, len(events))
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return res, fmt.Errorf("postgres: upsert: %w", err)
		}
		if _, err := marshalAttrs(e.Attrs); err != nil {
			return res, fmt.Errorf("postgres: upsert: event %s: %w", e.ID, err)
		}
		norm[i] = normalize(e)
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		res = store.UpsertResult{}
		// Serialise Upserts touching the same ids: each decides from what it
		// read, so two must not interleave on one id. The locks are taken in
		// one consistent order (by key), so overlapping calls cannot deadlock.
		if _, err := tx.Exec(ctx, `SELECT count(pg_advisory_xact_lock($1, k)) FROM (
				SELECT DISTINCT hashtext(id) AS k FROM unnest($2::text[]) AS id ORDER BY k) AS keys`,
			upsertLockClass, ids); err != nil {
			return err
		}
		b, err := load(ctx, tx, ids)
		if err != nil {
			return err
		}
		for _, e := range norm {
			r, err := b.upsert(e)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			res = res.Add(r)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return tx.SendBatch(ctx, &b.batch).Close()
	})
	if err != nil {
		return store.UpsertResult{}, fmt.Errorf("postgres: upsert: %w", err)
	}
	return res, nil
}

// stored is what Upsert needs of a stored event.
type stored struct {
	updated time.Time
	hash    []byte
	state   string
	attrs   []byte
}

// tlEntry is a timeline entry; the slice order of an event's entries is
// their arrival order (seq).
type tlEntry struct {
	state string
	at    time.Time
}

// upsertBatch decides a call's writes in memory, from the stored rows of
// its ids read up front, and queues them as one pipelined batch: two round
// trips per call instead of several per event. The advisory locks make the
// rows read stay current until the commit.
type upsertBatch struct {
	events   map[string]*stored
	timeline map[string][]tlEntry
	batch    pgx.Batch
}

func load(ctx context.Context, tx pgx.Tx, ids []string) (*upsertBatch, error) {
	b := &upsertBatch{events: make(map[string]*stored, len(ids)), timeline: make(map[string][]tlEntry, len(ids))}
	rows, err := tx.Query(ctx, `SELECT id, updated_at, hash, state, attrs FROM events WHERE id = ANY($1::text[])`, ids)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var (
			id string
			st stored
			up pgtype.Timestamptz
		)
		if err := rows.Scan(&id, &up, &st.hash, &st.state, &st.attrs); err != nil {
			rows.Close()
			return nil, err
		}
		st.updated = fromTS(up)
		b.events[id] = &st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT event_id, state, at FROM timeline WHERE event_id = ANY($1::text[]) ORDER BY seq`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			t  tlEntry
			at pgtype.Timestamptz
		)
		if err := rows.Scan(&id, &t.state, &at); err != nil {
			return nil, err
		}
		t.at = fromTS(at)
		b.timeline[id] = append(b.timeline[id], t)
	}
	return b, rows.Err()
}

func (b *upsertBatch) upsert(e change.Event) (store.UpsertResult, error) {
	var res store.UpsertResult
	st, found := b.events[e.ID]
	apply := false
	attrs, err := marshalAttrs(e.Attrs)
	if err != nil {
		return res, err
	}
	var hash []byte
	switch {
	case !found:
		apply, res.Inserted = true, 1
	case e.UpdatedAt.Before(st.updated):
		res.Unchanged = 1
	case e.UpdatedAt.After(st.updated):
		apply, res.Updated = true, 1
	default:
		// Same updated_at seen twice, typically from webhook and poll,
		// whose payloads carry different attributes: keep both.
		if attrs, err = mergeAttrs(st.attrs, e.Attrs); err != nil {
			return res, err
		}
		if hash, err = contentHash(e, attrs); err != nil {
			return res, err
		}
		if bytes.Equal(hash, st.hash) {
			res.Unchanged = 1
		} else {
			apply, res.Updated = true, 1
		}
	}

	storedState := ""
	if found {
		storedState = st.state
	}
	if apply {
		if hash == nil {
			if hash, err = contentHash(e, attrs); err != nil {
				return res, err
			}
		}
		var a any
		if attrs != nil {
			a = string(attrs)
		}
		b.batch.Queue(`INSERT INTO events (`+eventColumns+`, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16)
			ON CONFLICT (id) DO UPDATE SET
				kind = excluded.kind, project_id = excluded.project_id,
				project_path = excluded.project_path, title = excluded.title,
				state = excluded.state, author = excluded.author,
				web_url = excluded.web_url, ref = excluded.ref, sha = excluded.sha,
				created_at = excluded.created_at, updated_at = excluded.updated_at,
				occurred_at = excluded.occurred_at, source = excluded.source,
				attrs = excluded.attrs, hash = excluded.hash`,
			e.ID, string(e.Kind), e.ProjectID, e.ProjectPath, e.Title,
			e.State, e.Author, e.WebURL, e.Ref, e.SHA,
			e.CreatedAt, e.UpdatedAt, e.OccurredAt, string(e.Source), a, hash)
		b.events[e.ID] = &stored{updated: e.UpdatedAt, hash: hash, state: e.State, attrs: attrs}
	}

	trs := e.SortedTransitions()
	if len(trs) == 0 && apply && e.State != "" && (!found || e.State != storedState) {
		when := e.OccurredAt
		if when.IsZero() {
			when = e.UpdatedAt
		}
		trs = []change.Transition{{State: e.State, At: when}}
	}
	// Even for an event older than the stored one: a late webhook still
	// tells us a state the object was in.
	for _, t := range trs {
		b.appendTimeline(e.ID, t, e.Source)
	}
	return res, nil
}

// appendTimeline adds t unless the object was already known to be in that
// state then: the same entry exists, or the latest entry at or before t
// (the last to arrive among those at the same instant) has the same state:
// a later sighting of a state it was in.
func (b *upsertBatch) appendTimeline(id string, t change.Transition, src change.Source) {
	tl := b.timeline[id]
	var prev *tlEntry
	for i := range tl {
		c := &tl[i]
		if c.state == t.State && c.at.Equal(t.At) {
			return
		}
		if !c.at.After(t.At) && (prev == nil || !c.at.Before(prev.at)) {
			prev = c
		}
	}
	if prev != nil && prev.state == t.State {
		return
	}
	b.timeline[id] = append(tl, tlEntry{state: t.State, at: t.At})
	b.batch.Queue(`INSERT INTO timeline (event_id, state, at, source) VALUES ($1, $2, $3, $4)`,
		id, t.State, t.At, string(src))
}

// marshalAttrs is the canonical JSON of attributes (encoding/json sorts map
// keys), nil for none.
func marshalAttrs(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("attributes: %w", err)
	}
	return b, nil
}

// mergeAttrs overlays m on the stored attributes. json.Number keeps stored
// numbers as they were written.
func mergeAttrs(stored []byte, m map[string]any) ([]byte, error) {
	if len(stored) == 0 {
		return marshalAttrs(m)
	}
	dec := json.NewDecoder(bytes.NewReader(stored))
	dec.UseNumber()
	var old map[string]any
	if err := dec.Decode(&old); err != nil {
		return nil, fmt.Errorf("stored attributes: %w", err)
	}
	for k, v := range m {
		old[k] = v
	}
	return marshalAttrs(old)
}

// canonical re-encodes JSON through Go's own types, so that the same
// attributes hash equal whether they come from Go values or from jsonb,
// which formats numbers its own way.
func canonical(attrs []byte) ([]byte, error) {
	if attrs == nil {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(attrs, &v); err != nil {
		return nil, fmt.Errorf("attributes: %w", err)
	}
	return json.Marshal(v)
}

// contentHash identifies what an event says, apart from which way it came
// in (Source) and the transitions, which the timeline keeps: the same object
// state from webhook and poll hashes equal. e's times are already UTC.
func contentHash(e change.Event, attrs []byte) ([]byte, error) {
	c, err := canonical(attrs)
	if err != nil {
		return nil, err
	}
	e.Source = ""
	e.Transitions = nil
	e.Attrs = nil
	// Marshalling a struct of strings, ints and valid times cannot fail.
	b, _ := json.Marshal(e)
	h := sha256.New()
	h.Write(b)
	h.Write(c)
	return h.Sum(nil), nil
}

func scanEvent(r scanner) (change.Event, error) {
	var (
		e                          change.Event
		kind, source               string
		created, updated, occurred pgtype.Timestamptz
		attrs                      []byte
	)
	err := r.Scan(&e.ID, &kind, &e.ProjectID, &e.ProjectPath, &e.Title, &e.State, &e.Author,
		&e.WebURL, &e.Ref, &e.SHA, &created, &updated, &occurred, &source, &attrs)
	if err != nil {
		return e, err
	}
	e.Kind, e.Source = change.Kind(kind), change.Source(source)
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = fromTS(created), fromTS(updated), fromTS(occurred)
	if len(attrs) > 0 {
		if err := json.Unmarshal(attrs, &e.Attrs); err != nil {
			return e, fmt.Errorf("event %s: stored attributes: %w", e.ID, err)
		}
		if len(e.Attrs) == 0 {
			e.Attrs = nil
		}
	}
	return e, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error) {
	// One repeatable-read transaction, so the event and its timeline are
	// from the same moment even while an Upsert commits.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return change.Event{}, nil, fmt.Errorf("postgres: get %s: %w", id, err)
	}
	defer tx.Rollback(ctx)
	e, err := scanEvent(tx.QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return change.Event{}, nil, fmt.Errorf("postgres: event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return change.Event{}, nil, fmt.Errorf("postgres: get %s: %w", id, err)
	}
	rows, err := tx.Query(ctx, `SELECT state, at, source FROM timeline WHERE event_id = $1 ORDER BY at, seq`, id)
	if err != nil {
		return change.Event{}, nil, fmt.Errorf("postgres: get %s timeline: %w", id, err)
	}
	defer rows.Close()
	var tl []change.TimelineEntry
	for rows.Next() {
		var (
			t      = change.TimelineEntry{EventID: id}
			at     pgtype.Timestamptz
			source string
		)
		if err := rows.Scan(&t.State, &at, &source); err != nil {
			return change.Event{}, nil, fmt.Errorf("postgres: get %s timeline: %w", id, err)
		}
		t.At, t.Source = fromTS(at), change.Source(source)
		tl = append(tl, t)
	}
	if err := rows.Err(); err != nil {
		return change.Event{}, nil, fmt.Errorf("postgres: get %s timeline: %w", id, err)
	}
	return e, tl, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	lim, err := limit("list", f.Limit)
	if err != nil {
		return store.Page{}, err
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, a any) {
		args = append(args, a)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Kind != "" {
		add("kind = ?", string(f.Kind))
	}
	if f.ProjectID != 0 {
		add("project_id = ?", f.ProjectID)
	}
	if f.ProjectPath != "" {
		add("project_path = ?", f.ProjectPath)
	}
	if f.Author != "" {
		add("author = ?", f.Author)
	}
	if f.State != "" {
		add("state = ?", f.State)
	}
	if !f.Since.IsZero() {
		add("occurred_at >= ?", ts(f.Since))
	}
	if !f.Until.IsZero() {
		add("occurred_at < ?", ts(f.Until))
	}
	if f.Cursor != "" {
		occurred, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return store.Page{}, fmt.Errorf("postgres: list: %w", err)
		}
		// Keyset, not OFFSET: a page starts after the last row handed out,
		// so rows stored meanwhile neither repeat nor skip any.
		args = append(args, occurred, id)
		where = append(where, fmt.Sprintf("(occurred_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	q := `SELECT ` + eventColumns + ` FROM events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One more than asked tells whether there is a next page.
	args = append(args, lim+1)
	q += fmt.Sprintf(` ORDER BY occurred_at DESC, id DESC LIMIT $%d`, len(args))

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return store.Page{}, fmt.Errorf("postgres: list: %w", err)
	}
	defer rows.Close()
	var page store.Page
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return store.Page{}, fmt.Errorf("postgres: list: %w", err)
		}
		page.Events = append(page.Events, e)
	}
	if err := rows.Err(); err != nil {
		return store.Page{}, fmt.Errorf("postgres: list: %w", err)
	}
	if len(page.Events) > lim {
		page.Events = page.Events[:lim]
		last := page.Events[lim-1]
		page.NextCursor = encodeCursor(last.OccurredAt, last.ID)
	}
	return page, nil
}

const cursorVersion = "1"

// encodeCursor keeps occurred_at as microseconds since the Unix epoch, as
// exact as the column.
func encodeCursor(occurred time.Time, id string) string {
	var us int64
	if !occurred.IsZero() {
		us = occurred.UnixMicro()
	}
	z := "0"
	if occurred.IsZero() {
		z = "z"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + ":" + z + strconv.FormatInt(us, 10) + ":" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	bad := fmt.Errorf("%w %q", store.ErrInvalidCursor, c)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != cursorVersion || parts[2] == "" || len(parts[1]) < 2 {
		return time.Time{}, "", bad
	}
	if parts[1][0] == 'z' {
		return time.Time{}, parts[2], nil
	}
	if parts[1][0] != '0' {
		return time.Time{}, "", bad
	}
	us, err := strconv.ParseInt(parts[1][1:], 10, 64)
	if err != nil {
		return time.Time{}, "", bad
	}
	return time.UnixMicro(us).UTC(), parts[2], nil
}

// Count implements store.Store.
func (s *Store) Count(ctx context.Context, kind change.Kind) (int, error) {
	var (
		n   int
		err error
	)
	if kind == "" {
		err = s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM events`).Scan(&n)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM events WHERE kind = $1`, string(kind)).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: count %q: %w", kind, err)
	}
	return n, nil
}
