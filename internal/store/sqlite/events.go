package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Times are stored as unix nanoseconds (see migrations/00001_init.sql), which
// int64 holds for these years only.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func checkTime(name string, t time.Time) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return fmt.Errorf("%s %v outside the storable range %d-%d", name, t, minTime.Year(), maxTime.Year())
	}
	return nil
}

func checkEvent(e change.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		t    time.Time
	}{{"created_at", e.CreatedAt}, {"updated_at", e.UpdatedAt}, {"occurred_at", e.OccurredAt}} {
		if err := checkTime(c.name, c.t); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	for _, t := range e.Transitions {
		if err := checkTime("transition "+t.State, t.At); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	return nil
}

const eventColumns = `id, kind, project_id, project_path, title, state, author, web_url, ref, sha,
	created_at, updated_at, occurred_at, source, attrs`

// Upsert implements store.Store. Events are applied in order, so a repeated
// id later in the call sees the earlier one.
func (s *Store) Upsert(ctx context.Context, events ...change.Event) (store.UpsertResult, error) {
	var res store.UpsertResult
	if len(events) == 0 {
		return res, nil
	}
	// All of them first: a call with one bad event stores none.
	for _, e := range events {
		if err := checkEvent(e); err != nil {
			return res, fmt.Errorf("sqlite: upsert: %w", err)
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		u, err := prepareUpserter(ctx, tx)
		if err != nil {
			return err
		}
		defer u.close()
		for _, e := range events {
			// The driver only notices a cancelled context between
			// statements of its own; checking per event bounds the work
			// done for a caller that has gone.
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := u.upsert(ctx, e)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			res = res.Add(r)
		}
		return nil
	})
	if err != nil {
		return store.UpsertResult{}, fmt.Errorf("sqlite: upsert: %w", err)
	}
	return res, nil
}

// upserter holds one transaction's prepared statements, so a batch compiles
// each statement once.
type upserter struct {
	sel, put, prev, add *sql.Stmt
}

func prepareUpserter(ctx context.Context, tx *sql.Tx) (*upserter, error) {
	u := &upserter{}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&u.sel, `SELECT updated_at, hash, state, attrs FROM events WHERE id = ?`},
		{&u.put, `INSERT INTO events (` + eventColumns + `, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				kind = excluded.kind, project_id = excluded.project_id,
				project_path = excluded.project_path, title = excluded.title,
				state = excluded.state, author = excluded.author,
				web_url = excluded.web_url, ref = excluded.ref, sha = excluded.sha,
				created_at = excluded.created_at, updated_at = excluded.updated_at,
				occurred_at = excluded.occurred_at, source = excluded.source,
				attrs = excluded.attrs, hash = excluded.hash`},
		{&u.prev, `SELECT state FROM timeline WHERE event_id = ? AND at <= ?
			ORDER BY at DESC, seq DESC LIMIT 1`},
		{&u.add, `INSERT INTO timeline (event_id, state, at, source) VALUES (?, ?, ?, ?)
			ON CONFLICT (event_id, state, at) DO NOTHING`},
	} {
		st, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			u.close()
			return nil, err
		}
		*p.st = st
	}
	return u, nil
}

func (u *upserter) close() {
	for _, st := range []*sql.Stmt{u.sel, u.put, u.prev, u.add} {
		if st != nil {
			st.Close()
		}
	}
}

func (u *upserter) upsert(ctx context.Context, e change.Event) (store.UpsertResult, error) {
	var (
		storedUpdated int64
		storedHash    []byte
		storedState   string
		storedAttrs   sql.NullString
	)
	err := u.sel.QueryRowContext(ctx, e.ID).Scan(&storedUpdated, &storedHash, &storedState, &storedAttrs)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return store.UpsertResult{}, err
	}

	var res store.UpsertResult
	apply := false
	attrs, err := marshalAttrs(e.Attrs)
	if err != nil {
		return res, err
	}
	updated := nanos(e.UpdatedAt)
	switch {
	case !found:
		apply, res.Inserted = true, 1
	case updated < storedUpdated:
		res.Unchanged = 1
	case updated > storedUpdated:
		apply, res.Updated = true, 1
	default:
		// Same updated_at seen twice, typically from webhook and poll,
		// whose payloads carry different attributes: keep both.
		if attrs, err = mergeAttrs(storedAttrs.String, e.Attrs); err != nil {
			return res, err
		}
		if bytes.Equal(contentHash(e, attrs), storedHash) {
			res.Unchanged = 1
		} else {
			apply, res.Updated = true, 1
		}
	}

	if apply {
		var a any
		if attrs != nil {
			a = string(attrs)
		}
		_, err := u.put.ExecContext(ctx, e.ID, string(e.Kind), e.ProjectID, e.ProjectPath, e.Title,
			e.State, e.Author, e.WebURL, e.Ref, e.SHA,
			nanos(e.CreatedAt), updated, nanos(e.OccurredAt), string(e.Source), a, contentHash(e, attrs))
		if err != nil {
			return store.UpsertResult{}, err
		}
	}

	ts := e.SortedTransitions()
	if len(ts) == 0 && apply && e.State != "" && (!found || e.State != storedState) {
		when := e.OccurredAt
		if when.IsZero() {
			when = e.UpdatedAt
		}
		ts = []change.Transition{{State: e.State, At: when}}
	}
	// Even for an event older than the stored one: a late webhook still
	// tells us a state the object was in.
	for _, t := range ts {
		if err := u.appendTimeline(ctx, e.ID, t, e.Source); err != nil {
			return store.UpsertResult{}, err
		}
	}
	return res, nil
}

// appendTimeline adds t unless the object was already known to be in that
// state then: the same entry exists (the unique key), or the latest entry at
// or before t has the same state (a later sighting of a state it was in).
func (u *upserter) appendTimeline(ctx context.Context, id string, t change.Transition, src change.Source) error {
	at := nanos(t.At)
	var prev string
	err := u.prev.QueryRowContext(ctx, id, at).Scan(&prev)
	switch {
	case err == nil && prev == t.State:
		return nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return err
	}
	_, err = u.add.ExecContext(ctx, id, t.State, at, string(src))
	return err
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
// numbers as they were written, so merging in nothing new reproduces the
// stored JSON byte for byte, and with it the stored hash.
func mergeAttrs(stored string, m map[string]any) ([]byte, error) {
	if stored == "" {
		return marshalAttrs(m)
	}
	dec := json.NewDecoder(strings.NewReader(stored))
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

// contentHash identifies what an event says, apart from which way it came
// in (Source) and the transitions, which the timeline keeps: the same object
// state from webhook and poll hashes equal. Times are hashed in UTC so the
// same instant in another zone is the same content.
func contentHash(e change.Event, attrs []byte) []byte {
	e.Source = ""
	e.Transitions = nil
	e.Attrs = nil
	e.CreatedAt = e.CreatedAt.UTC()
	e.UpdatedAt = e.UpdatedAt.UTC()
	e.OccurredAt = e.OccurredAt.UTC()
	// Marshalling a struct of strings, ints and valid times cannot fail.
	b, _ := json.Marshal(e)
	h := sha256.New()
	h.Write(b)
	h.Write(attrs)
	return h.Sum(nil)
}

type scanner interface{ Scan(dest ...any) error }

func scanEvent(r scanner) (change.Event, error) {
	var (
		e                          change.Event
		kind, source               string
		created, updated, occurred int64
		attrs                      sql.NullString
	)
	err := r.Scan(&e.ID, &kind, &e.ProjectID, &e.ProjectPath, &e.Title, &e.State, &e.Author,
		&e.WebURL, &e.Ref, &e.SHA, &created, &updated, &occurred, &source, &attrs)
	if err != nil {
		return e, err
	}
	e.Kind, e.Source = change.Kind(kind), change.Source(source)
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = fromNanos(created), fromNanos(updated), fromNanos(occurred)
	if attrs.Valid && attrs.String != "" {
		if err := json.Unmarshal([]byte(attrs.String), &e.Attrs); err != nil {
			return e, fmt.Errorf("event %s: stored attributes: %w", e.ID, err)
		}
	}
	return e, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error) {
	// One read transaction, so the event and its timeline are from the same
	// moment even while an Upsert commits.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return change.Event{}, nil, fmt.Errorf("sqlite: get %s: %w", id, err)
	}
	defer tx.Rollback()
	e, err := scanEvent(tx.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return change.Event{}, nil, fmt.Errorf("sqlite: event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return change.Event{}, nil, fmt.Errorf("sqlite: get %s: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT state, at, source FROM timeline WHERE event_id = ? ORDER BY at, seq`, id)
	if err != nil {
		return change.Event{}, nil, fmt.Errorf("sqlite: get %s timeline: %w", id, err)
	}
	defer rows.Close()
	var tl []change.TimelineEntry
	for rows.Next() {
		var (
			t      = change.TimelineEntry{EventID: id}
			at     int64
			source string
		)
		if err := rows.Scan(&t.State, &at, &source); err != nil {
			return change.Event{}, nil, fmt.Errorf("sqlite: get %s timeline: %w", id, err)
		}
		t.At, t.Source = fromNanos(at), change.Source(source)
		tl = append(tl, t)
	}
	if err := rows.Err(); err != nil {
		return change.Event{}, nil, fmt.Errorf("sqlite: get %s timeline: %w", id, err)
	}
	return e, tl, nil
}

// List implements store.Store. A Limit above store.MaxLimit is clamped to it;
// a negative one is an error.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	limit, err := store.PageLimit(f.Limit)
	if err != nil {
		return store.Page{}, fmt.Errorf("sqlite: list: %w", err)
	}
	for _, c := range []struct {
		name string
		t    time.Time
	}{{"since", f.Since}, {"until", f.Until}} {
		if err := checkTime(c.name, c.t); err != nil {
			return store.Page{}, fmt.Errorf("sqlite: list: %w", err)
		}
	}

	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
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
		add("occurred_at >= ?", nanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("occurred_at < ?", nanos(f.Until))
	}
	if f.Cursor != "" {
		occurred, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return store.Page{}, fmt.Errorf("sqlite: list: %w", err)
		}
		// Keyset, not OFFSET: a page starts after the last row handed out,
		// so rows stored meanwhile neither repeat nor skip any.
		add("(occurred_at, id) < (?, ?)", occurred, id)
	}
	q := `SELECT ` + eventColumns + ` FROM events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One more than asked tells whether there is a next page.
	q += ` ORDER BY occurred_at DESC, id DESC LIMIT ?`
	args = append(args, limit+1)

	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return store.Page{}, fmt.Errorf("sqlite: list: %w", err)
	}
	defer rows.Close()
	var page store.Page
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return store.Page{}, fmt.Errorf("sqlite: list: %w", err)
		}
		page.Events = append(page.Events, e)
	}
	if err := rows.Err(); err != nil {
		return store.Page{}, fmt.Errorf("sqlite: list: %w", err)
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.NextCursor = encodeCursor(nanos(last.OccurredAt), last.ID)
	}
	return page, nil
}

const cursorVersion = "1"

func encodeCursor(occurred int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + ":" + strconv.FormatInt(occurred, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	bad := fmt.Errorf("%w %q", store.ErrInvalidCursor, c)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", bad
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != cursorVersion || parts[2] == "" {
		return 0, "", bad
	}
	occurred, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return 0, "", bad
	}
	return occurred, parts[2], nil
}

// Count implements store.Store.
func (s *Store) Count(ctx context.Context, kind change.Kind) (int, error) {
	var (
		n   int
		err error
	)
	if kind == "" {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE kind = ?`, string(kind)).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: count %q: %w", kind, err)
	}
	return n, nil
}
