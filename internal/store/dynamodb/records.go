package dynamodb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Projects, sync states, audit entries and digest records: each kind in
// one partition of its own (they are few, or read newest first as a
// whole), sorted by its key.

// PutProjects implements store.ProjectStore.
func (s *Store) PutProjects(ctx context.Context, ps ...store.Project) error {
	for _, p := range ps {
		for _, t := range []struct {
			name string
			t    time.Time
		}{{"last_activity_at", p.LastActivityAt}, {"status_at", p.StatusAt}} {
			if err := store.CheckTime(t.name, t.t); err != nil {
				return s.errorf("put project %d: %w", p.ID, err)
			}
		}
	}
	for _, p := range ps {
		status := p.Status
		if status == "" {
			status = store.ProjectActive
		}
		it := key(pkProjects, idKey(p.ID))
		it["id"] = avN(p.ID)
		for _, f := range []struct{ name, v string }{
			{"path", p.Path}, {"name", p.Name}, {"web_url", p.WebURL}, {"default_branch", p.DefaultBranch},
			{"status", status}, {"status_detail", p.StatusDetail},
		} {
			setS(it, f.name, f.v)
		}
		it["archived"] = avBool(p.Archived)
		setT(it, "last_activity_at", p.LastActivityAt)
		setT(it, "status_at", p.StatusAt)
		if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it}); err != nil {
			return s.errorf("put project %d: %w", p.ID, err)
		}
	}
	return nil
}

// Projects implements store.ProjectStore.
func (s *Store) Projects(ctx context.Context) ([]store.Project, error) {
	its, err := s.partition(ctx, pkProjects)
	if err != nil {
		return nil, s.errorf("projects: %w", err)
	}
	out := make([]store.Project, len(its))
	for i, it := range its {
		out[i] = store.Project{
			ID: getN(it, "id"), Path: getS(it, "path"), Name: getS(it, "name"), WebURL: getS(it, "web_url"),
			DefaultBranch: getS(it, "default_branch"), Archived: getBool(it, "archived"),
			LastActivityAt: getT(it, "last_activity_at"), Status: getS(it, "status"),
			StatusDetail: getS(it, "status_detail"), StatusAt: getT(it, "status_at"),
		}
	}
	slices.SortStableFunc(out, func(a, b store.Project) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func syncKey(projectID int64, kind change.Kind) string { return idKey(projectID) + "#" + string(kind) }

func syncOf(it item) store.SyncState {
	return store.SyncState{
		ProjectID: getN(it, "project_id"), ProjectPath: getS(it, "project_path"), Kind: change.Kind(getS(it, "kind")),
		Cursor: getT(it, "cursor_at"), LastRunAt: getT(it, "last_run_at"), LastSuccess: getT(it, "last_success_at"),
		Fetched: int(getN(it, "fetched")), Stored: int(getN(it, "stored")), LastError: getS(it, "last_error"),
	}
}

// SyncState implements store.ProjectStore.
func (s *Store) SyncState(ctx context.Context, projectID int64, kind change.Kind) (store.SyncState, error) {
	it, err := s.getItem(ctx, key(pkSync, syncKey(projectID, kind)))
	switch {
	case err != nil:
		return store.SyncState{}, s.errorf("sync state %d/%s: %w", projectID, kind, err)
	case it == nil:
		// Never synced: the zero cursor tells the poller to backfill.
		return store.SyncState{ProjectID: projectID, Kind: kind}, nil
	}
	return syncOf(it), nil
}

// PutSyncState implements store.ProjectStore.
func (s *Store) PutSyncState(ctx context.Context, st store.SyncState) error {
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"cursor", st.Cursor}, {"last_run_at", st.LastRunAt}, {"last_success_at", st.LastSuccess}} {
		if err := store.CheckTime(t.name, t.t); err != nil {
			return s.errorf("put sync state %d/%s: %w", st.ProjectID, st.Kind, err)
		}
	}
	it := key(pkSync, syncKey(st.ProjectID, st.Kind))
	it["project_id"] = avN(st.ProjectID)
	it["kind"] = avS(string(st.Kind))
	setS(it, "project_path", st.ProjectPath)
	setT(it, "cursor_at", st.Cursor)
	setT(it, "last_run_at", st.LastRunAt)
	setT(it, "last_success_at", st.LastSuccess)
	setN(it, "fetched", int64(st.Fetched))
	setN(it, "stored", int64(st.Stored))
	setS(it, "last_error", st.LastError)
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it}); err != nil {
		return s.errorf("put sync state %d/%s: %w", st.ProjectID, st.Kind, err)
	}
	return nil
}

// SyncStates implements store.ProjectStore.
func (s *Store) SyncStates(ctx context.Context) ([]store.SyncState, error) {
	its, err := s.partition(ctx, pkSync)
	if err != nil {
		return nil, s.errorf("sync states: %w", err)
	}
	out := make([]store.SyncState, len(its))
	for i, it := range its {
		out[i] = syncOf(it)
	}
	slices.SortStableFunc(out, func(a, b store.SyncState) int {
		return cmp.Or(strings.Compare(a.ProjectPath, b.ProjectPath), strings.Compare(string(a.Kind), string(b.Kind)),
			cmp.Compare(a.ProjectID, b.ProjectID))
	})
	return out, nil
}

// Audit entries.

func (s *Store) auditItem(e store.AuditEntry) item {
	it := key(pkAudit, idKey(e.ID))
	it["id"] = avN(e.ID)
	setT(it, "at", e.Time)
	setS(it, "method", e.Method)
	setS(it, "path", e.Path)
	setN(it, "status", int64(e.Status))
	setN(it, "duration_ns", int64(e.Duration))
	it["rate_limit_remaining"] = avN(int64(e.RateLimitRemaining))
	setS(it, "job", e.Job)
	setS(it, "error", e.Error)
	it[attrTTL] = s.ttl(s.retention)
	return it
}

func auditOf(it item) store.AuditEntry {
	d := time.Duration(getN(it, "duration_ns"))
	return store.AuditEntry{
		ID: getN(it, "id"), Time: getT(it, "at"), Method: getS(it, "method"), Path: getS(it, "path"),
		Status: int(getN(it, "status")), Duration: d, DurationMS: float64(d) / 1e6,
		RateLimitRemaining: int(getN(it, "rate_limit_remaining")), Job: getS(it, "job"), Error: getS(it, "error"),
	}
}

// AppendAudit implements store.AuditStore: each entry's id from the audit
// counter.
func (s *Store) AppendAudit(ctx context.Context, entries ...store.AuditEntry) error {
	for _, e := range entries {
		if err := store.CheckTime("time", e.Time); err != nil {
			return s.errorf("append audit: %w", err)
		}
	}
	for _, e := range entries {
		id, err := s.next(ctx, counterAudit)
		if err != nil {
			return s.errorf("append audit: %w", err)
		}
		e.ID = id
		if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: s.auditItem(e)}); err != nil {
			return s.errorf("append audit: %w", err)
		}
	}
	return nil
}

// ListAudit implements store.AuditStore: the audit partition newest id
// first from the cursor on, the filters a FilterExpression.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error) {
	limit, err := store.PageLimit(f.Limit)
	if err != nil {
		return store.AuditPage{}, s.errorf("list audit: %w", err)
	}
	cond := "#pk = :pk"
	names := liveNames(map[string]string{"#pk": attrPK})
	values := s.liveValues(item{":pk": avS(pkAudit)})
	if f.Cursor != "" {
		id, err := store.ParseIDCursor(f.Cursor)
		if err != nil {
			return store.AuditPage{}, s.errorf("list audit: %w", err)
		}
		cond += " AND #sk < :cursor"
		names["#sk"] = attrSK
		values[":cursor"] = avS(idKey(id))
	}
	filter := []string{live}
	add := func(expr, name, attr string, v types.AttributeValue) {
		names[name] = attr
		values[":"+name[1:]] = v
		filter = append(filter, expr)
	}
	if !f.Since.IsZero() {
		add("#at >= :since", "#at", "at", avN(f.Since.UnixNano()))
		values[":since"] = values[":at"]
		delete(values, ":at")
	}
	if !f.Until.IsZero() {
		// A zero time is stored as no attribute, the start of time.
		add("(#at < :until OR attribute_not_exists(#at))", "#at", "at", avN(f.Until.UnixNano()))
		values[":until"] = values[":at"]
		delete(values, ":at")
	}
	if f.Job != "" {
		add("#job = :job", "#job", "job", avS(f.Job))
	}
	switch {
	case f.Status == -1:
		// No answer: stored without a status.
		names["#status"] = "status"
		filter = append(filter, "attribute_not_exists(#status)")
	case f.Status != 0:
		add("#status = :status", "#status", "status", avN(int64(f.Status)))
	}
	if f.PathPrefix != "" {
		add("begins_with(#path, :path)", "#path", "path", avS(f.PathPrefix))
	}
	var out []store.AuditEntry
	err = s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String(cond),
		FilterExpression:          aws.String(strings.Join(filter, " AND ")),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ScanIndexForward:          aws.Bool(false),
		ConsistentRead:            aws.Bool(true),
		Limit:                     aws.Int32(int32(limit + 1)),
	}, func(it item) bool {
		out = append(out, auditOf(it))
		return len(out) <= limit
	})
	if err != nil {
		return store.AuditPage{}, s.errorf("list audit: %w", err)
	}
	return store.Listing{Limit: limit}.AuditPage(out), nil
}

// PruneAudit implements store.AuditStore.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	var keys []item
	if before.IsZero() {
		return 0, nil
	}
	err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk"),
		FilterExpression:          aws.String("#at < :before OR attribute_not_exists(#at)"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#sk": attrSK, "#at": "at"},
		ExpressionAttributeValues: item{":pk": avS(pkAudit), ":before": avN(before.UnixNano())},
		ProjectionExpression:      aws.String("#pk, #sk, #at"),
		ConsistentRead:            aws.Bool(true),
	}, func(it item) bool {
		if getT(it, "at").Before(before) {
			keys = append(keys, key(pkAudit, getS(it, attrSK)))
		}
		return true
	})
	if err != nil {
		return 0, s.errorf("prune audit: %w", err)
	}
	if err := s.deleteAll(ctx, keys); err != nil {
		return 0, s.errorf("prune audit: %w", err)
	}
	return len(keys), nil
}

// deleteAll deletes items by key, 25 at a time (BatchWriteItem's most).
func (s *Store) deleteAll(ctx context.Context, keys []item) error {
	for len(keys) > 0 {
		n := min(len(keys), 25)
		var reqs []types.WriteRequest
		for _, k := range keys[:n] {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}})
		}
		keys = keys[n:]
		req := map[string][]types.WriteRequest{s.table: reqs}
		for try := 0; len(req) > 0; try++ {
			if err := backoff(ctx, try); err != nil {
				return err
			}
			out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req})
			if err != nil {
				return err
			}
			req = out.UnprocessedItems
		}
	}
	return nil
}

// ExportAudit implements store.PortStore.
func (s *Store) ExportAudit(ctx context.Context, after int64, limit int) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.exportByID(ctx, pkAudit, after, limit, func(it item) { out = append(out, auditOf(it)) })
	if err != nil {
		return nil, s.errorf("export audit: %w", err)
	}
	return out, nil
}

// exportByID reads up to limit live items of partition pk with ids above
// after, lowest first.
func (s *Store) exportByID(ctx context.Context, pk string, after int64, limit int, each func(item)) error {
	lim, err := store.PageLimit(limit)
	if err != nil {
		return err
	}
	n := 0
	return s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk > :after"),
		FilterExpression:          aws.String(live),
		ExpressionAttributeNames:  liveNames(map[string]string{"#pk": attrPK, "#sk": attrSK}),
		ExpressionAttributeValues: s.liveValues(item{":pk": avS(pk), ":after": avS(idKey(after))}),
		ConsistentRead:            aws.Bool(true),
		Limit:                     aws.Int32(int32(lim)),
	}, func(it item) bool {
		each(it)
		n++
		return n < lim
	})
}

// ImportAudit implements store.PortStore: entries put unless their id is
// stored, and the audit counter moved past them.
func (s *Store) ImportAudit(ctx context.Context, entries ...store.AuditEntry) (int, error) {
	var top int64
	for _, e := range entries {
		if e.ID <= 0 {
			return 0, s.errorf("import audit: entry without id")
		}
		if err := store.CheckTime("time", e.Time); err != nil {
			return 0, s.errorf("import audit: %w", err)
		}
		top = max(top, e.ID)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	// First, so that an entry appended meanwhile takes no imported id.
	if err := s.atLeast(ctx, counterAudit, top); err != nil {
		return 0, s.errorf("import audit: %w", err)
	}
	n := 0
	for _, e := range entries {
		ok, err := s.putNew(ctx, s.auditItem(e))
		if err != nil {
			return n, s.errorf("import audit: %w", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// putNew puts it unless an item with its key is stored (and live); it
// says whether it did.
func (s *Store) putNew(ctx context.Context, it item) (bool, error) {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.table,
		Item:                      it,
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #ttl < :now"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#ttl": attrTTL},
		ExpressionAttributeValues: item{":now": avN(s.now().Unix())},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	return err == nil, err
}

// Digest records.

// digestKey is (key, destination) as one sort key; the key's length
// first, so no two pairs run into each other.
func digestKey(k, destination string) string { return fmt.Sprintf("%d:%s|%s", len(k), k, destination) }

func digestOf(it item) store.DigestSend {
	return store.DigestSend{
		Key: getS(it, "period_key"), Destination: getS(it, "destination"), ClaimedAt: getT(it, "claimed_at"),
		Attempts: int(getN(it, "attempts")), SentAt: getT(it, "sent_at"), LastError: getS(it, "last_error"),
		UpdatedAt: getT(it, "updated_at"),
	}
}

// ClaimDigest implements store.DigestStore. Each step is one conditional
// write: of two senders creating the record one does, and of two taking
// over a failed or stale one, one does.
func (s *Store) ClaimDigest(ctx context.Context, k, destination string, now time.Time, lease time.Duration) (store.DigestSend, bool, error) {
	if err := store.CheckTime("now", now); err != nil {
		return store.DigestSend{}, false, s.errorf("claim digest: %w", err)
	}
	dk := key(pkDigest, digestKey(k, destination))
	it := key(pkDigest, digestKey(k, destination))
	it["period_key"], it["destination"] = avS(k), avS(destination)
	setT(it, "claimed_at", now)
	it["attempts"] = avN(1)
	setT(it, "updated_at", now)
	it[attrTTL] = s.ttl(s.retention)
	claimed, err := s.putNew(ctx, it)
	if err != nil {
		return store.DigestSend{}, false, s.errorf("claim digest: %w", err)
	}
	if !claimed {
		// Taken over only when unsent and not claimed within lease (a
		// failed attempt clears its claim).
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:        &s.table,
			Key:              dk,
			UpdateExpression: aws.String("SET #claimed = :now, #updated = :now, #ttl = :ttl ADD #attempts :one"),
			ConditionExpression: aws.String("attribute_exists(#pk) AND attribute_not_exists(#sent) AND " +
				"(attribute_not_exists(#claimed) OR #claimed <= :stale)"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#claimed": "claimed_at", "#updated": "updated_at",
				"#attempts": "attempts", "#sent": "sent_at", "#ttl": attrTTL},
			ExpressionAttributeValues: item{":now": avN(now.UnixNano()), ":one": avN(1), ":stale": avN(now.Add(-lease).UnixNano()),
				":ttl": s.ttl(s.retention)},
		})
		switch {
		case err == nil:
			claimed = true
		case !isConditionFailed(err):
			return store.DigestSend{}, false, s.errorf("claim digest: %w", err)
		}
	}
	got, err := s.getItem(ctx, dk)
	if err != nil {
		return store.DigestSend{}, false, s.errorf("claim digest: read back: %w", err)
	}
	if got == nil {
		// Only an expiry between the claim and this read gets here.
		return store.DigestSend{}, false, s.errorf("claim digest %s for %s: the claimed record is gone", k, destination)
	}
	return digestOf(got), claimed, nil
}

// FinishDigest implements store.DigestStore.
func (s *Store) FinishDigest(ctx context.Context, k, destination string, at time.Time, sendErr string) error {
	if err := store.CheckTime("at", at); err != nil {
		return s.errorf("finish digest: %w", err)
	}
	names := map[string]string{"#pk": attrPK, "#claimed": "claimed_at", "#updated": "updated_at", "#err": "last_error"}
	values := item{":at": avN(at.UnixNano())}
	update := "SET #updated = :at REMOVE #claimed"
	if sendErr == "" {
		names["#sent"] = "sent_at"
		update = "SET #updated = :at, #sent = :at REMOVE #claimed, #err"
	} else {
		values[":err"] = avS(sendErr)
		update = "SET #updated = :at, #err = :err REMOVE #claimed"
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(pkDigest, digestKey(k, destination)),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if err != nil && !isConditionFailed(err) {
		return s.errorf("finish digest: %w", err)
	}
	return nil
}

// DigestSends implements store.DigestStore.
func (s *Store) DigestSends(ctx context.Context, limit int) ([]store.DigestSend, error) {
	n, err := store.PageLimit(limit)
	if err != nil {
		return nil, s.errorf("digest sends: %w", err)
	}
	its, err := s.partition(ctx, pkDigest)
	if err != nil {
		return nil, s.errorf("digest sends: %w", err)
	}
	out := make([]store.DigestSend, len(its))
	for i, it := range its {
		out[i] = digestOf(it)
	}
	slices.SortStableFunc(out, func(a, b store.DigestSend) int {
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), strings.Compare(b.Key, a.Key), strings.Compare(a.Destination, b.Destination))
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}
