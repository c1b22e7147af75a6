package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// dialect checks events as the SQL backends do: Validate, and times
// within store.MinTime..MaxTime, which every backend holds.
var dialect = store.Dialect{Check: store.CheckTime}

// allEvents is the value of every event's g_all.
const allEvents = "event"

// maxRetries bounds how often a conditional write is retried after another
// writer changed the item in between.
const maxRetries = 100

// orderKey is an event's position in List's order as a string whose byte
// order is that order: occurred_at as its Unix nanoseconds offset to be
// unsigned, in fixed-width hex (the zero time first), then the id.
func orderKey(occurred time.Time, id string) string { return timeKey(occurred) + "#" + id }

func timeKey(t time.Time) string {
	if t.IsZero() {
		return strings.Repeat("0", 16)
	}
	return fmt.Sprintf("%016x", uint64(t.UnixNano())^(1<<63))
}

func eventPK(id string) string { return pkEventPrefix + id }

// Event item attributes.
const (
	aKind, aProject, aPath, aTitle, aState, aAuthor = "kind", "project_id", "project_path", "title", "state", "author"
	aURL, aRef, aSHA, aSource, aAttrs, aHash        = "web_url", "ref", "sha", "source", "attrs", "hash"
	aCreated, aUpdated, aOccurred, aObserved        = "created_at", "updated_at", "occurred_at", "observed_at"
	aTimeline, aVersion                             = "timeline", "ver"
	tState, tAt, tSource                            = "s", "at", "src"
)

// eventItem is the item of an event written with attrs and hash, its
// timeline tl (in the order its entries were stored) and version ver.
func (s *Store) eventItem(e change.Event, attrs, hash []byte, tl []store.Step, ver int64) item {
	it := key(eventPK(e.ID), skOne)
	it[attrID] = avS(e.ID)
	it[aKind] = avS(string(e.Kind))
	setN(it, aProject, e.ProjectID)
	for _, f := range []struct{ name, v string }{
		{aPath, e.ProjectPath}, {aTitle, e.Title}, {aState, e.State}, {aAuthor, e.Author}, {aURL, e.WebURL},
		{aRef, e.Ref}, {aSHA, e.SHA}, {aSource, string(e.Source)}, {aAttrs, string(attrs)},
	} {
		setS(it, f.name, f.v)
	}
	setT(it, aCreated, e.CreatedAt)
	setT(it, aUpdated, e.UpdatedAt)
	setT(it, aOccurred, e.OccurredAt)
	setT(it, aObserved, e.ObservedAt)
	if len(hash) > 0 {
		it[aHash] = avB(hash)
	}
	entries := make([]types.AttributeValue, len(tl))
	for i, st := range tl {
		m := item{tState: avS(st.State), tSource: avS(string(st.Source))}
		setT(m, tAt, st.At)
		entries[i] = &types.AttributeValueMemberM{Value: m}
	}
	it[aTimeline] = &types.AttributeValueMemberL{Value: entries}
	it[aVersion] = avN(ver)
	keep := s.retention
	if k, ok := s.kinds[e.Kind]; ok && k > 0 {
		keep = k
	}
	it[attrTTL] = s.ttl(keep)
	// The index keys.
	it[attrAll] = avS(allEvents)
	it[attrOrder] = avS(orderKey(e.OccurredAt, e.ID))
	it[attrKind] = avS(string(e.Kind))
	if e.ProjectID != 0 {
		it[attrProject] = avS(strconv.FormatInt(e.ProjectID, 10))
	}
	setS(it, attrPath, e.ProjectPath)
	setS(it, attrAuthor, e.Author)
	setS(it, attrState, e.State)
	it[attrConn] = avS(store.ConnectionOf(e.ID))
	return it
}

// eventOf reads an event item, attributes decoded by decode.
func eventOf(it item, decode func([]byte) (map[string]any, error)) (change.Event, error) {
	e := change.Event{
		ID: getS(it, attrID), Kind: change.Kind(getS(it, aKind)), ProjectID: getN(it, aProject),
		ProjectPath: getS(it, aPath), Title: getS(it, aTitle), State: getS(it, aState), Author: getS(it, aAuthor),
		WebURL: getS(it, aURL), Ref: getS(it, aRef), SHA: getS(it, aSHA), Source: change.Source(getS(it, aSource)),
		CreatedAt: getT(it, aCreated), UpdatedAt: getT(it, aUpdated), OccurredAt: getT(it, aOccurred),
	}
	var err error
	if e.Attrs, err = decode([]byte(getS(it, aAttrs))); err != nil {
		return e, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return e, nil
}

// storedOf is an event item as the upsert rule reads it.
func storedOf(it item) *store.StoredEvent {
	e, _ := eventOf(it, func([]byte) (map[string]any, error) { return nil, nil })
	e.ObservedAt = getT(it, aObserved)
	var attrs []byte
	if a := getS(it, aAttrs); a != "" {
		attrs = []byte(a)
	}
	return &store.StoredEvent{Event: e, AttrsJSON: attrs, Hash: getB(it, aHash)}
}

// stepsOf is an event item's timeline in the order its entries were
// stored.
func stepsOf(it item) []store.Step {
	l, _ := it[aTimeline].(*types.AttributeValueMemberL)
	if l == nil {
		return nil
	}
	out := make([]store.Step, 0, len(l.Value))
	for _, v := range l.Value {
		m, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		out = append(out, store.Step{State: getS(m.Value, tState), At: getT(m.Value, tAt), Source: change.Source(getS(m.Value, tSource))})
	}
	return out
}

// timelineOf is an event item's timeline as Get returns it: oldest first,
// entries of one instant in the order they were stored.
func timelineOf(it item) []change.TimelineEntry {
	steps := stepsOf(it)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At.Before(steps[j].At) })
	var out []change.TimelineEntry
	id := getS(it, attrID)
	for _, st := range steps {
		out = append(out, change.TimelineEntry{EventID: id, State: st.State, At: st.At, Source: st.Source})
	}
	return out
}

// putEvent writes it in place of the version read (ver, 0 for none): a
// conditional put, which fails with a condition error when another writer
// came in between.
func (s *Store) putEvent(ctx context.Context, it item, ver int64) error {
	in := &dynamodb.PutItemInput{TableName: &s.table, Item: it, ExpressionAttributeNames: map[string]string{}}
	if ver == 0 {
		// None stored, or one expired that DynamoDB has not deleted yet.
		in.ConditionExpression = aws.String("attribute_not_exists(#pk) OR #ttl < :now")
		in.ExpressionAttributeNames = map[string]string{"#pk": attrPK, "#ttl": attrTTL}
		in.ExpressionAttributeValues = item{":now": avN(s.now().Unix())}
	} else {
		in.ConditionExpression = aws.String("#ver = :ver")
		in.ExpressionAttributeNames = map[string]string{"#ver": aVersion}
		in.ExpressionAttributeValues = item{":ver": avN(ver)}
	}
	_, err := s.db.PutItem(ctx, in)
	return err
}

// Upsert implements store.EventStore. Every event of the call is checked
// first, so a call with one bad event writes nothing; then each event is
// one read, the upsert rule (store.Decide, store.Timeline) and one
// conditional write, retried from the read when another writer changed
// the item in between. Events are applied in order, so a repeated id
// later in the call sees the earlier one.
func (s *Store) Upsert(ctx context.Context, events ...change.Event) (store.UpsertResult, error) {
	var res store.UpsertResult
	for _, e := range events {
		if err := dialect.CheckEvent(e); err != nil {
			return res, s.errorf("upsert: %w", err)
		}
		if _, err := store.MarshalAttrs(e.Attrs); err != nil {
			return res, s.errorf("upsert: event %s: %w", e.ID, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, s.errorf("upsert: %w", err)
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	// The stored versions, read in batches, so a call costs a write per
	// event and a read per hundred; a write that finds the item changed
	// since reads it again.
	read, err := s.readEvents(ctx, ids)
	if err != nil {
		return res, s.errorf("upsert: %w", err)
	}
	for _, e := range events {
		if err := ctx.Err(); err != nil {
			return res, s.errorf("upsert: %w", err)
		}
		r, err := s.upsert(ctx, e, read)
		if err != nil {
			return res, s.errorf("upsert: event %s: %w", e.ID, err)
		}
		res = res.Add(r)
	}
	return res, nil
}

// readEvents reads the stored items of ids (strongly consistent, a
// hundred per BatchGetItem): nil for an id none is stored for, or an
// expired one.
func (s *Store) readEvents(ctx context.Context, ids []string) (map[string]item, error) {
	out := make(map[string]item, len(ids))
	var keys []item
	for _, id := range ids {
		if _, seen := out[id]; !seen {
			out[id] = nil
			keys = append(keys, key(eventPK(id), skOne))
		}
	}
	for len(keys) > 0 {
		n := min(len(keys), 100)
		req := map[string]types.KeysAndAttributes{s.table: {Keys: keys[:n], ConsistentRead: aws.Bool(true)}}
		keys = keys[n:]
		for try := 0; len(req) > 0; try++ {
			if err := backoff(ctx, try); err != nil {
				return nil, err
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, err
			}
			for _, it := range res.Responses[s.table] {
				if !s.expired(it) {
					out[getS(it, attrID)] = it
				}
			}
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

// upsert stores e by the upsert rule against its stored item, read[e.ID]
// on the first try (then updated to what was written, for a later event of
// the call with the same id), read afresh after a conflict.
func (s *Store) upsert(ctx context.Context, e change.Event, read map[string]item) (store.UpsertResult, error) {
	for try := range maxRetries {
		old, cached := read[e.ID]
		if try > 0 || !cached {
			var err error
			if old, err = s.getItem(ctx, key(eventPK(e.ID), skOne)); err != nil {
				return store.UpsertResult{}, err
			}
		}
		var (
			stored *store.StoredEvent
			tl     []store.Step
			ver    int64
		)
		if old != nil {
			stored, tl, ver = storedOf(old), stepsOf(old), getN(old, aVersion)
		}
		d, err := store.Decide(e, stored)
		if err != nil {
			return store.UpsertResult{}, err
		}
		after, drop, add := tl, []store.Step(nil), []change.Transition(nil)
		if len(d.Transitions) > 0 || d.Authority != nil {
			after, drop, add = store.Timeline(tl, d)
		}
		if !d.Write && len(drop) == 0 && len(add) == 0 {
			return d.Result, nil
		}
		row, attrs, hash := d.Event, d.Attrs, d.Hash
		if !d.Write {
			row, attrs, hash = stored.Event, stored.AttrsJSON, stored.Hash
		}
		it := s.eventItem(row, attrs, hash, after, ver+1)
		err = s.putEvent(ctx, it, ver)
		if isConditionFailed(err) {
			continue
		}
		if err != nil {
			return store.UpsertResult{}, err
		}
		read[e.ID] = it
		return d.Result, nil
	}
	return store.UpsertResult{}, fmt.Errorf("changed by other writers %d times in a row", maxRetries)
}

// Get implements store.EventStore.
func (s *Store) Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error) {
	it, err := s.getItem(ctx, key(eventPK(id), skOne))
	switch {
	case err != nil:
		return change.Event{}, nil, s.errorf("get %s: %w", id, err)
	case it == nil:
		return change.Event{}, nil, s.errorf("event %s: %w", id, store.ErrNotFound)
	}
	e, err := eventOf(it, store.DecodeAttrs)
	if err != nil {
		return change.Event{}, nil, s.errorf("get %s: %w", id, err)
	}
	return e, timelineOf(it), nil
}

// listDim is one of List's filters and the index that serves it.
type listDim struct {
	index, attr string
	values      []string
}

// dims are f's filters that filter, each with its values (duplicates
// and empty ones dropped), in the order List prefers to drive its
// queries by: the most selective first.
func dims(f store.Filter) []listDim {
	uniq := func(one string, more []string) []string {
		var out []string
		for _, v := range append([]string{one}, more...) {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out
	}
	kinds := make([]string, len(f.Kinds))
	for i, k := range f.Kinds {
		kinds[i] = string(k)
	}
	pids := make([]string, len(f.ProjectIDs))
	for i, id := range f.ProjectIDs {
		pids[i] = strconv.FormatInt(id, 10)
	}
	pid := ""
	if f.ProjectID != 0 {
		pid = strconv.FormatInt(f.ProjectID, 10)
	}
	var out []listDim
	for _, d := range []listDim{
		{indexProject, attrProject, uniq(pid, pids)},
		{indexPath, attrPath, uniq(f.ProjectPath, f.ProjectPaths)},
		{indexAuthor, attrAuthor, uniq(f.Author, f.Authors)},
		{indexState, attrState, uniq(f.State, f.States)},
		{indexKind, attrKind, uniq(string(f.Kind), kinds)},
		{indexConn, attrConn, uniq("", f.Connections)},
	} {
		if len(d.values) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// List implements store.EventStore. It queries the index of the first of
// f's filters (dims) once per value it lists, newest first from the
// cursor's position on, and merges the queries' pages; the other filters
// are a FilterExpression on those queries. Without filters it queries the
// index of every event. since/until and the cursor bound the index's sort
// key, so no query reads past the page it serves.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	limit, err := store.PageLimit(f.Limit)
	if err != nil {
		return store.Page{}, s.errorf("list: %w", err)
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"since", f.Since}, {"until", f.Until}} {
		if err := store.CheckTime(t.name, t.t); err != nil {
			return store.Page{}, s.errorf("list: %w", err)
		}
	}
	// The sort key's range: lo inclusive, hi exclusive ("" for none).
	var lo, hi string
	if !f.Since.IsZero() {
		lo = timeKey(f.Since)
	}
	if !f.Until.IsZero() {
		hi = timeKey(f.Until)
	}
	if f.Cursor != "" {
		occurred, id, err := store.ParseEventCursor(f.Cursor)
		if err != nil {
			return store.Page{}, s.errorf("list: %w", err)
		}
		if !store.InTimeRange(occurred) {
			return store.Page{}, s.errorf("list: %w %q: time outside the storable range", store.ErrInvalidCursor, f.Cursor)
		}
		if c := orderKey(occurred, id); hi == "" || c < hi {
			hi = c
		}
	}
	if lo != "" && hi != "" && lo >= hi {
		// Nothing is in the range, and DynamoDB refuses a BETWEEN whose
		// bounds are the wrong way round.
		return store.Page{}, nil
	}
	ds := dims(f)
	drive := listDim{indexAll, attrAll, []string{allEvents}}
	if len(ds) > 0 {
		// The filter of fewest values drives (fewest queries), the more
		// selective one of those that tie.
		i := 0
		for j, d := range ds {
			if len(d.values) < len(ds[i].values) {
				i = j
			}
		}
		drive, ds = ds[i], slices.Delete(slices.Clone(ds), i, i+1)
	}
	names := liveNames(map[string]string{"#pk": drive.attr})
	if lo != "" || hi != "" {
		names["#ok"] = attrOrder
	}
	values := s.liveValues(nil)
	filter := []string{live}
	for i, d := range ds {
		n := fmt.Sprintf("#f%d", i)
		names[n] = d.attr
		// IN takes at most 100 values: more are several INs, ORed.
		var ins []string
		for c := range slices.Chunk(d.values, 100) {
			var ps []string
			for _, v := range c {
				p := fmt.Sprintf(":f%d_%d", i, len(values))
				values[p] = avS(v)
				ps = append(ps, p)
			}
			ins = append(ins, n+" IN ("+strings.Join(ps, ", ")+")")
		}
		filter = append(filter, "("+strings.Join(ins, " OR ")+")")
	}
	cond := "#pk = :pk"
	switch {
	case lo != "" && hi != "":
		// BETWEEN is inclusive: the item at hi itself (the cursor's) is
		// dropped below.
		cond += " AND #ok BETWEEN :lo AND :hi"
		values[":lo"], values[":hi"] = avS(lo), avS(hi)
	case lo != "":
		cond += " AND #ok >= :lo"
		values[":lo"] = avS(lo)
	case hi != "":
		cond += " AND #ok < :hi"
		values[":hi"] = avS(hi)
	}
	streams := make([]*stream, len(drive.values))
	for i, v := range drive.values {
		vs := make(item, len(values)+1)
		for k, x := range values {
			vs[k] = x
		}
		vs[":pk"] = avS(v)
		streams[i] = &stream{s: s, in: &dynamodb.QueryInput{
			TableName:                 &s.table,
			IndexName:                 aws.String(drive.index),
			KeyConditionExpression:    aws.String(cond),
			FilterExpression:          aws.String(strings.Join(filter, " AND ")),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: vs,
			ScanIndexForward:          aws.Bool(false),
			Limit:                     aws.Int32(int32(limit + 1)),
		}, skip: hi}
	}
	var es []change.Event
	for len(es) <= limit {
		var best *stream
		for _, st := range streams {
			head, err := st.peek(ctx)
			if err != nil {
				return store.Page{}, s.errorf("list: %w", err)
			}
			if head != nil && (best == nil || getS(head, attrOrder) > getS(best.buf[0], attrOrder)) {
				best = st
			}
		}
		if best == nil {
			break
		}
		e, err := eventOf(best.pop(), store.DecodeAttrs)
		if err != nil {
			return store.Page{}, s.errorf("list: %w", err)
		}
		es = append(es, e)
	}
	return store.Listing{Limit: limit}.EventPage(es), nil
}

// stream is one Query of List, read a page at a time as the merge needs.
type stream struct {
	s    *Store
	in   *dynamodb.QueryInput
	buf  []item
	done bool
	skip string // the sort key of the cursor's item, left out
}

func (st *stream) peek(ctx context.Context) (item, error) {
	for len(st.buf) == 0 && !st.done {
		out, err := st.s.db.Query(ctx, st.in)
		if err != nil {
			return nil, err
		}
		for _, it := range out.Items {
			if getS(it, attrOrder) != st.skip {
				st.buf = append(st.buf, it)
			}
		}
		st.in.ExclusiveStartKey = out.LastEvaluatedKey
		st.done = len(out.LastEvaluatedKey) == 0
	}
	if len(st.buf) == 0 {
		return nil, nil
	}
	return st.buf[0], nil
}

func (st *stream) pop() item {
	it := st.buf[0]
	st.buf = st.buf[1:]
	return it
}

// Count implements store.EventStore: a COUNT query of the kind's index
// (of every event's for ""), expired events left out.
func (s *Store) Count(ctx context.Context, kind change.Kind) (int, error) {
	index, attr, v := indexKind, attrKind, string(kind)
	if kind == "" {
		index, attr, v = indexAll, attrAll, allEvents
	}
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		FilterExpression:          aws.String(live),
		ExpressionAttributeNames:  liveNames(map[string]string{"#pk": attr}),
		ExpressionAttributeValues: s.liveValues(item{":pk": avS(v)}),
		Select:                    types.SelectCount,
	}
	n := 0
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return 0, s.errorf("count %q: %w", kind, err)
		}
		n += int(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			return n, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Versions implements store.EventStore: the items read by key, a hundred
// at a time (BatchGetItem's most).
func (s *Store) Versions(ctx context.Context, ids []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	var keys []item
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			keys = append(keys, key(eventPK(id), skOne))
		}
	}
	for len(keys) > 0 {
		n := min(len(keys), 100)
		batch := keys[:n]
		keys = keys[n:]
		req := map[string]types.KeysAndAttributes{s.table: {
			Keys:                     batch,
			ConsistentRead:           aws.Bool(true),
			ProjectionExpression:     aws.String("#id, #u, #src, #ttl"),
			ExpressionAttributeNames: map[string]string{"#id": attrID, "#u": aUpdated, "#src": aSource, "#ttl": attrTTL},
		}}
		for try := 0; len(req) > 0; try++ {
			if err := backoff(ctx, try); err != nil {
				return nil, s.errorf("versions: %w", err)
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, s.errorf("versions: %w", err)
			}
			for _, it := range res.Responses[s.table] {
				s.addVersion(out, it)
			}
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

// addVersion adds a live event item stored by a poll to out.
func (s *Store) addVersion(out map[string]time.Time, it item) {
	if !s.expired(it) && getS(it, aSource) == string(change.SourcePoll) {
		out[getS(it, attrID)] = getT(it, aUpdated)
	}
}

// VersionsByPrefix implements store.EventStore: a begins_with query of
// the index of every event by id.
func (s *Store) VersionsByPrefix(ctx context.Context, prefix string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	cond, values := "#pk = :pk", item{":pk": avS(allEvents)}
	if prefix != "" {
		cond += " AND begins_with(#id, :prefix)"
		values[":prefix"] = avS(prefix)
	}
	err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(indexAllByID),
		KeyConditionExpression:    aws.String(cond),
		ProjectionExpression:      aws.String("#id, #u, #src, #ttl"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrAll, "#id": attrID, "#u": aUpdated, "#src": aSource, "#ttl": attrTTL},
		ExpressionAttributeValues: values,
	}, func(it item) bool { s.addVersion(out, it); return true })
	if err != nil {
		return nil, s.errorf("versions: %w", err)
	}
	return out, nil
}

// Unverified says how many of projectID's events of kind a webhook stored
// that no poll has read since, and the earliest of their created_at and
// updated_at (zero for none or unknown), as the SQL backends do for the
// poller.
func (s *Store) Unverified(ctx context.Context, projectID int64, kind change.Kind) (int, time.Time, error) {
	var (
		n        int
		earliest time.Time
		unknown  bool
	)
	err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                aws.String(indexProject),
		KeyConditionExpression:   aws.String("#pk = :pk"),
		FilterExpression:         aws.String(live + " AND #kind = :kind AND #src = :src"),
		ExpressionAttributeNames: liveNames(map[string]string{"#pk": attrProject, "#kind": aKind, "#src": aSource}),
		ExpressionAttributeValues: s.liveValues(item{":pk": avS(strconv.FormatInt(projectID, 10)),
			":kind": avS(string(kind)), ":src": avS(string(change.SourceWebhook))}),
	}, func(it item) bool {
		n++
		for _, t := range []time.Time{getT(it, aCreated), getT(it, aUpdated)} {
			if t.IsZero() {
				unknown = true
			} else if earliest.IsZero() || t.Before(earliest) {
				earliest = t
			}
		}
		return true
	})
	if err != nil {
		return 0, time.Time{}, s.errorf("unverified: %w", err)
	}
	if unknown || n == 0 {
		earliest = time.Time{}
	}
	return n, earliest, nil
}

// ExportEvents implements store.PortStore: the index of every event by
// id, from after on.
func (s *Store) ExportEvents(ctx context.Context, after string, limit int) ([]store.History, error) {
	lim, err := store.PageLimit(limit)
	if err != nil {
		return nil, s.errorf("export events: %w", err)
	}
	var out []store.History
	var decodeErr error
	err = s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(indexAllByID),
		KeyConditionExpression:    aws.String("#pk = :pk AND #id > :after"),
		FilterExpression:          aws.String(live),
		ExpressionAttributeNames:  liveNames(map[string]string{"#pk": attrAll, "#id": attrID}),
		ExpressionAttributeValues: s.liveValues(item{":pk": avS(allEvents), ":after": avS(after)}),
		Limit:                     aws.Int32(int32(lim)),
	}, func(it item) bool {
		e, err := eventOf(it, store.ExactAttrs)
		if err != nil {
			decodeErr = err
			return false
		}
		out = append(out, store.History{Event: e, Timeline: timelineOf(it)})
		return len(out) < lim
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, s.errorf("export events: %w", err)
	}
	return out, nil
}

// ImportEvents implements store.PortStore, each history by one
// conditional write as Upsert does.
func (s *Store) ImportEvents(ctx context.Context, hs ...store.History) (store.ImportResult, error) {
	var res store.ImportResult
	rows := make([]struct{ attrs, hash []byte }, len(hs))
	for i, h := range hs {
		if err := dialect.CheckHistory(h); err != nil {
			return res, s.errorf("import: %w", err)
		}
		attrs, hash, err := store.ImportRow(h.Event)
		if err != nil {
			return res, s.errorf("import: event %s: %w", h.Event.ID, err)
		}
		rows[i].attrs, rows[i].hash = attrs, hash
	}
	for i, h := range hs {
		if err := ctx.Err(); err != nil {
			return res, s.errorf("import: %w", err)
		}
		r, err := s.importOne(ctx, h, rows[i].attrs, rows[i].hash)
		if err != nil {
			return res, s.errorf("import: event %s: %w", h.Event.ID, err)
		}
		res.Events += r.Events
		res.Timeline += r.Timeline
	}
	return res, nil
}

func (s *Store) importOne(ctx context.Context, h store.History, attrs, hash []byte) (store.ImportResult, error) {
	e := h.Event
	for range maxRetries {
		var res store.ImportResult
		old, err := s.getItem(ctx, key(eventPK(e.ID), skOne))
		if err != nil {
			return res, err
		}
		var (
			tl  []store.Step
			ver int64
		)
		row, rowAttrs, rowHash := e, attrs, hash
		if old != nil {
			st := storedOf(old)
			tl, ver = stepsOf(old), getN(old, aVersion)
			if e.UpdatedAt.After(st.UpdatedAt) {
				res.Events = 1
			} else {
				row, rowAttrs, rowHash = st.Event, st.AttrsJSON, st.Hash
			}
		} else {
			res.Events = 1
		}
	next:
		for _, t := range h.Timeline {
			for _, have := range tl {
				if have.State == t.State && have.At.Equal(t.At) {
					continue next
				}
			}
			tl = append(tl, store.Step{State: t.State, At: t.At.UTC(), Source: t.Source})
			res.Timeline++
		}
		if res.Events == 0 && res.Timeline == 0 {
			return res, nil
		}
		err = s.putEvent(ctx, s.eventItem(row, rowAttrs, rowHash, tl, ver+1), ver)
		if isConditionFailed(err) {
			continue
		}
		return res, err
	}
	return store.ImportResult{}, errors.New("changed by other writers too often")
}
