package dynamodb

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/labtrail/labtrail/internal/store"
)

// Deliveries are items of one partition sorted by id (ids from the
// delivery counter); each idempotency key is an item of its own naming
// its delivery, put only if absent, which is what makes a delivery stored
// once. The index delivery_by_status serves the listing by status and the
// claims of pending deliveries, oldest first.

// gzipAbove is the body size from which a body is stored gzipped: an
// item holds at most 400 KB, and webhook bodies are JSON, which shrinks
// well.
const gzipAbove = 32 << 10

// maxDeliveryBytes is the most of body and headers a delivery item takes,
// leaving room in DynamoDB's 400 KB for its other attributes and names.
const maxDeliveryBytes = 390 << 10

// claimLease is how long a claim keeps a delivery from other converters;
// a converter that dies mid-batch leaves its deliveries pending, to be
// claimed again after it.
const claimLease = 5 * time.Minute

// deliveryColumns are the attributes of a delivery without its body, for
// listings.
var deliveryColumns = []string{"id", "idempotency_key", "event_type", "event_uuid", "webhook_uuid", "headers",
	"received_at", "status", "attempts", "last_error", "processed_at", "body_size", attrTTL}

func (s *Store) deliveryItem(d store.Delivery) (item, error) {
	headers := "{}"
	if len(d.Headers) > 0 {
		b, err := json.Marshal(d.Headers)
		if err != nil {
			return nil, fmt.Errorf("delivery headers: %w", err)
		}
		headers = string(b)
	}
	status := d.Status
	if status == "" {
		status = store.DeliveryPending
	}
	it := key(pkDelivery, idKey(d.ID))
	it["id"] = avN(d.ID)
	for _, f := range []struct{ name, v string }{
		{"idempotency_key", d.IdempotencyKey}, {"event_type", d.EventType}, {"event_uuid", d.EventUUID},
		{"webhook_uuid", d.WebhookUUID}, {"headers", headers}, {"status", status}, {"last_error", d.LastError},
	} {
		setS(it, f.name, f.v)
	}
	setT(it, "received_at", d.ReceivedAt)
	setT(it, "processed_at", d.ProcessedAt)
	setN(it, "attempts", int64(d.Attempts))
	it["body_size"] = avN(int64(len(d.Body)))
	body := d.Body
	if len(body) > gzipAbove {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(body) //nolint:errcheck // a bytes.Buffer takes every write
		zw.Close()     //nolint:errcheck // likewise
		body = b.Bytes()
		it["body_gzip"] = avBool(true)
	}
	if n := len(body) + len(headers); n > maxDeliveryBytes {
		return nil, fmt.Errorf("delivery of %d bytes (%d after compression, with its headers): %w: a DynamoDB item holds at most 400 KB",
			len(d.Body), n, store.ErrTooLarge)
	}
	if len(body) > 0 {
		it["body"] = avB(body)
	}
	it[attrTTL] = s.ttl(s.retention)
	it[attrDStatus] = avS(status)
	it[attrDSort] = avS(idKey(d.ID))
	return it, nil
}

func deliveryOf(it item, withBody bool) (store.Delivery, error) {
	d := store.Delivery{
		ID: getN(it, "id"), IdempotencyKey: getS(it, "idempotency_key"), EventType: getS(it, "event_type"),
		EventUUID: getS(it, "event_uuid"), WebhookUUID: getS(it, "webhook_uuid"), ReceivedAt: getT(it, "received_at"),
		Status: getS(it, "status"), Attempts: int(getN(it, "attempts")), LastError: getS(it, "last_error"),
		ProcessedAt: getT(it, "processed_at"),
	}
	if err := json.Unmarshal([]byte(getS(it, "headers")), &d.Headers); err != nil {
		return d, fmt.Errorf("headers of delivery %d: %w", d.ID, err)
	}
	if !withBody {
		return d, nil
	}
	d.Body = getB(it, "body")
	if getBool(it, "body_gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(d.Body))
		if err == nil {
			d.Body, err = io.ReadAll(zr)
		}
		if err != nil {
			return d, fmt.Errorf("body of delivery %d: %w", d.ID, err)
		}
	}
	if d.Body == nil {
		d.Body = []byte{}
	}
	return d, nil
}

func keyItemKey(k string) item { return key(pkDeliveryKey+k, skOne) }

// PutDelivery implements store.DeliveryStore: the delivery is put under a
// new id, then its idempotency key, only if absent. A delivery that loses
// the race for its key is deleted again and the winner's id returned; a
// crash between the two writes leaves a delivery without its key, stored
// again by GitLab's retry (converting it twice changes nothing).
func (s *Store) PutDelivery(ctx context.Context, d store.Delivery) (int64, bool, error) {
	if d.IdempotencyKey == "" {
		return 0, false, s.errorf("put delivery: no idempotency key")
	}
	if err := store.CheckTime("received_at", d.ReceivedAt); err != nil {
		return 0, false, s.errorf("put delivery: %w", err)
	}
	if id, ok, err := s.deliveryByKey(ctx, d.IdempotencyKey); err != nil || ok {
		return id, ok, err
	}
	id, err := s.next(ctx, counterDeliver)
	if err != nil {
		return 0, false, s.errorf("put delivery: %w", err)
	}
	// As the SQL backends: the status given (pending when none), no attempt yet.
	d.ID, d.Attempts, d.LastError, d.ProcessedAt = id, 0, "", time.Time{}
	it, err := s.deliveryItem(d)
	if err != nil {
		return 0, false, s.errorf("put delivery: %w", err)
	}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it}); err != nil {
		return 0, false, s.errorf("put delivery: %w", err)
	}
	won, err := s.putKey(ctx, d.IdempotencyKey, id)
	if err != nil {
		return 0, false, s.errorf("put delivery: %w", err)
	}
	if won {
		return id, false, nil
	}
	if err := s.deleteAll(ctx, []item{key(pkDelivery, idKey(id))}); err != nil {
		return 0, false, s.errorf("put delivery: %w", err)
	}
	return s.deliveryByKey(ctx, d.IdempotencyKey)
}

// deliveryByKey is the id of the delivery stored with idempotency key k,
// if one is.
func (s *Store) deliveryByKey(ctx context.Context, k string) (int64, bool, error) {
	it, err := s.getItem(ctx, keyItemKey(k))
	if err != nil {
		return 0, false, s.errorf("put delivery: %w", err)
	}
	if it == nil {
		return 0, false, nil
	}
	return getN(it, "id"), true, nil
}

// putKey stores idempotency key k for delivery id unless it is stored.
func (s *Store) putKey(ctx context.Context, k string, id int64) (bool, error) {
	it := keyItemKey(k)
	it["id"] = avN(id)
	it[attrTTL] = s.ttl(s.retention)
	return s.putNew(ctx, it)
}

// Delivery implements store.DeliveryStore.
func (s *Store) Delivery(ctx context.Context, id int64) (store.Delivery, error) {
	it, err := s.getItem(ctx, key(pkDelivery, idKey(id)))
	switch {
	case err != nil:
		return store.Delivery{}, s.errorf("delivery %d: %w", id, err)
	case it == nil:
		return store.Delivery{}, s.errorf("delivery %d: %w", id, store.ErrNotFound)
	}
	d, err := deliveryOf(it, true)
	if err != nil {
		return store.Delivery{}, s.errorf("delivery %d: %w", id, err)
	}
	return d, nil
}

// projection names attrs in a ProjectionExpression (through names, as
// several are reserved words).
func projection(names map[string]string, attrs []string) *string {
	expr := ""
	for i, a := range attrs {
		n := fmt.Sprintf("#p%d", i)
		names[n] = a
		if i > 0 {
			expr += ", "
		}
		expr += n
	}
	return &expr
}

// ListDeliveries implements store.DeliveryStore: the delivery partition,
// or with a status that status's part of delivery_by_status, newest id
// first from the cursor on.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) (store.DeliveryPage, error) {
	limit, err := store.PageLimit(f.Limit)
	if err != nil {
		return store.DeliveryPage{}, s.errorf("list deliveries: %w", err)
	}
	in := &dynamodb.QueryInput{
		KeyConditionExpression:   aws.String("#pk = :pk"),
		FilterExpression:         aws.String(live),
		ExpressionAttributeNames: liveNames(map[string]string{"#pk": attrPK, "#sk": attrSK}),
		ScanIndexForward:         aws.Bool(false),
		Limit:                    aws.Int32(int32(limit + 1)),
	}
	in.ExpressionAttributeValues = s.liveValues(item{":pk": avS(pkDelivery)})
	if f.Status != "" {
		in.IndexName = aws.String(indexDelivery)
		in.ExpressionAttributeNames["#pk"], in.ExpressionAttributeNames["#sk"] = attrDStatus, attrDSort
		in.ExpressionAttributeValues[":pk"] = avS(f.Status)
	} else {
		in.ConsistentRead = aws.Bool(true)
	}
	if f.Cursor != "" {
		id, err := store.ParseIDCursor(f.Cursor)
		if err != nil {
			return store.DeliveryPage{}, s.errorf("list deliveries: %w", err)
		}
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk < :cursor")
		in.ExpressionAttributeValues[":cursor"] = avS(idKey(id))
	} else {
		delete(in.ExpressionAttributeNames, "#sk")
	}
	in.ProjectionExpression = projection(in.ExpressionAttributeNames, deliveryColumns)
	var (
		out     []store.Delivery
		readErr error
	)
	err = s.query(ctx, in, func(it item) bool {
		d, err := deliveryOf(it, false)
		if err != nil {
			readErr = err
			return false
		}
		out = append(out, d)
		return len(out) <= limit
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return store.DeliveryPage{}, s.errorf("list deliveries: %w", err)
	}
	return store.Listing{Limit: limit}.DeliveryPage(out), nil
}

// finish records an outcome on delivery id: status and reason, one more
// attempt, processed_at (now, or removed when zero), the status index key,
// and the claim released. cond, if set, is the write's condition.
func (s *Store) finish(ctx context.Context, id int64, status, reason string, processed time.Time, cond string, values item) error {
	names := map[string]string{"#pk": attrPK, "#status": "status", "#g": attrDStatus, "#err": "last_error",
		"#att": "attempts", "#proc": "processed_at", "#claim": "claim", "#until": "claim_until"}
	if values == nil {
		values = item{}
	}
	values[":status"], values[":one"] = avS(status), avN(1)
	set := "SET #status = :status, #g = :status"
	remove := " REMOVE #claim, #until"
	if reason != "" {
		set += ", #err = :err"
		values[":err"] = avS(reason)
	} else {
		remove += ", #err"
	}
	if processed.IsZero() {
		remove += ", #proc"
	} else {
		set += ", #proc = :proc"
		values[":proc"] = avN(processed.UnixNano())
	}
	if cond == "" {
		cond = "attribute_exists(#pk)"
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(pkDelivery, idKey(id)),
		UpdateExpression:          aws.String(set + remove + " ADD #att :one"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	return err
}

// MarkDelivery implements store.DeliveryStore; processed_at is set for an
// outcome that is final and success, and cleared otherwise, as the SQL
// backends do.
func (s *Store) MarkDelivery(ctx context.Context, id int64, status, lastError string) error {
	var processed time.Time
	if status == store.DeliveryProcessed || status == store.DeliveryStoredRaw {
		processed = s.now()
	}
	err := s.finish(ctx, id, status, lastError, processed, "", nil)
	if isConditionFailed(err) {
		err = store.ErrNotFound
	}
	if err != nil {
		return s.errorf("mark delivery %d: %w", id, err)
	}
	return nil
}

// ConvertDeliveries implements store.DeliveryConverter. Without
// transactions, a claim is a conditional write per delivery that sets a
// claim token and lease on it (only where no live lease is), so two
// converters never take the same delivery; the events are then upserted
// and each delivery's outcome written under the token. A converter that
// dies in between leaves its deliveries pending, claimable again once
// the lease is over; their events, if stored, are stored again alike.
func (s *Store) ConvertDeliveries(ctx context.Context, claim store.DeliveryClaim, convert func([]store.Delivery) []store.Conversion) (store.ConvertResult, error) {
	var res store.ConvertResult
	if len(claim.IDs) == 0 && claim.Limit <= 0 {
		return res, s.errorf("convert deliveries: claim deliveries: limit %d", claim.Limit)
	}
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read does not fail
	token := hex.EncodeToString(b[:])
	var claimed []item
	// Others may claim what one query found: query again until something
	// is claimed or nothing is left.
	for range maxRetries {
		found, err := s.claimable(ctx, claim)
		if err != nil {
			return res, s.errorf("convert deliveries: %w", err)
		}
		if len(found) == 0 {
			return store.ConvertResult{}, nil
		}
		sizes := make([]store.ClaimedSize, len(found))
		for i, it := range found {
			sizes[i] = store.ClaimedSize{ID: getN(it, "id"), Size: getN(it, "body_size")}
		}
		ids := store.ClaimedIDs(sizes, claim.MaxBytes)
		res.More = len(ids) < len(found) || (len(claim.IDs) == 0 && len(found) == claim.Limit)
		for _, id := range ids {
			it, err := s.take(ctx, id, token, len(claim.IDs) > 0)
			if err != nil {
				s.release(ctx, claimed, token)
				return store.ConvertResult{}, s.errorf("convert deliveries: %w", err)
			}
			if it != nil {
				claimed = append(claimed, it)
			}
		}
		if len(claimed) > 0 || len(claim.IDs) > 0 {
			break
		}
	}
	if len(claimed) == 0 {
		return store.ConvertResult{}, nil
	}
	for _, it := range claimed {
		d, err := deliveryOf(it, true)
		if err != nil {
			s.release(ctx, claimed, token)
			return store.ConvertResult{}, s.errorf("convert deliveries: %w", err)
		}
		res.Deliveries = append(res.Deliveries, d)
	}
	convs, events, err := dialect.CheckConversions(res.Deliveries, convert(res.Deliveries))
	if err == nil {
		res.Upsert, err = s.Upsert(ctx, events...)
	}
	if err != nil {
		s.release(ctx, claimed, token)
		return store.ConvertResult{}, s.errorf("convert deliveries: %w", err)
	}
	now := s.now()
	for _, c := range convs {
		var processed time.Time
		if c.Status != store.DeliveryPending {
			processed = now
		}
		err := s.finish(ctx, c.ID, c.Status, c.Reason, processed, "attribute_exists(#pk) AND #claim = :token", item{":token": avS(token)})
		if err != nil {
			return store.ConvertResult{}, s.errorf("convert deliveries: delivery %d: %w", c.ID, err)
		}
	}
	res.Conversions = convs
	// The deliveries as recorded.
	for i := range res.Deliveries {
		d := &res.Deliveries[i]
		d.Status, d.LastError, d.Attempts = convs[i].Status, convs[i].Reason, d.Attempts+1
		d.ProcessedAt = time.Time{}
		if convs[i].Status != store.DeliveryPending {
			d.ProcessedAt = now
		}
	}
	return res, nil
}

// claimable finds the deliveries claim names that no one holds: the ids
// given, or the oldest pending ones (up to claim.Limit), oldest first,
// with their body sizes.
func (s *Store) claimable(ctx context.Context, claim store.DeliveryClaim) ([]item, error) {
	var out []item
	if len(claim.IDs) > 0 {
		ids := slices.Clone(claim.IDs)
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			it, err := s.getItem(ctx, key(pkDelivery, idKey(id)))
			if err != nil {
				return nil, err
			}
			if it != nil {
				out = append(out, it)
			}
		}
		return out, nil
	}
	names := liveNames(map[string]string{"#pk": attrDStatus, "#until": "claim_until"})
	err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(indexDelivery),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		FilterExpression:          aws.String(live + " AND (attribute_not_exists(#until) OR #until < :nowns)"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: s.liveValues(item{":pk": avS(store.DeliveryPending), ":nowns": avN(s.now().UnixNano())}),
		ProjectionExpression:      projection(names, []string{"id", "body_size"}),
		Limit:                     aws.Int32(int32(claim.Limit)),
	}, func(it item) bool {
		out = append(out, it)
		return len(out) < claim.Limit
	})
	return out, err
}

// take claims delivery id for token unless another converter's lease is
// live on it (or, unless anyStatus, it is no longer pending); it returns
// the delivery as claimed, nil when it could not.
func (s *Store) take(ctx context.Context, id int64, token string, anyStatus bool) (item, error) {
	cond := "attribute_exists(#pk) AND (attribute_not_exists(#until) OR #until < :now)"
	names := map[string]string{"#pk": attrPK, "#claim": "claim", "#until": "claim_until"}
	now := s.now()
	values := item{":token": avS(token), ":until": avN(now.Add(claimLease).UnixNano()), ":now": avN(now.UnixNano())}
	if !anyStatus {
		cond += " AND #status = :pending"
		names["#status"] = "status"
		values[":pending"] = avS(store.DeliveryPending)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(pkDelivery, idKey(id)),
		UpdateExpression:          aws.String("SET #claim = :token, #until = :until"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

// release gives up token's claims on its, as if they were never taken;
// on failure the lease runs out instead.
func (s *Store) release(ctx context.Context, its []item, token string) {
	ctx = context.WithoutCancel(ctx)
	for _, it := range its {
		s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{ //nolint:errcheck // the lease ends the claim anyway
			TableName:                 &s.table,
			Key:                       key(pkDelivery, getS(it, attrSK)),
			UpdateExpression:          aws.String("REMOVE #claim, #until"),
			ConditionExpression:       aws.String("#claim = :token"),
			ExpressionAttributeNames:  map[string]string{"#claim": "claim", "#until": "claim_until"},
			ExpressionAttributeValues: item{":token": avS(token)},
		})
	}
}

// ExportDeliveries implements store.PortStore.
func (s *Store) ExportDeliveries(ctx context.Context, after int64, limit int) ([]store.Delivery, error) {
	var (
		out     []store.Delivery
		readErr error
	)
	err := s.exportByID(ctx, pkDelivery, after, limit, func(it item) {
		d, err := deliveryOf(it, true)
		if err != nil && readErr == nil {
			readErr = err
		}
		out = append(out, d)
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return nil, s.errorf("export deliveries: %w", err)
	}
	return out, nil
}

// ImportDeliveries implements store.PortStore: each delivery put under
// its id unless that id or its idempotency key is stored.
func (s *Store) ImportDeliveries(ctx context.Context, ds ...store.Delivery) (int, error) {
	var top int64
	its := make([]item, len(ds))
	for i, d := range ds {
		if err := store.CheckImportedDelivery(d); err != nil {
			return 0, s.errorf("import deliveries: %w", err)
		}
		for _, t := range []struct {
			name string
			t    time.Time
		}{{"received_at", d.ReceivedAt}, {"processed_at", d.ProcessedAt}} {
			if err := store.CheckTime(t.name, t.t); err != nil {
				return 0, s.errorf("import deliveries: delivery %d: %w", d.ID, err)
			}
		}
		it, err := s.deliveryItem(d)
		if err != nil {
			return 0, s.errorf("import deliveries: delivery %d: %w", d.ID, err)
		}
		its[i] = it
		top = max(top, d.ID)
	}
	if len(ds) == 0 {
		return 0, nil
	}
	if err := s.atLeast(ctx, counterDeliver, top); err != nil {
		return 0, s.errorf("import deliveries: %w", err)
	}
	n := 0
	for i, d := range ds {
		if _, dup, err := s.deliveryByKey(ctx, d.IdempotencyKey); err != nil || dup {
			if err != nil {
				return n, err
			}
			continue
		}
		ok, err := s.putNew(ctx, its[i])
		if err != nil {
			return n, s.errorf("import deliveries: delivery %d: %w", d.ID, err)
		}
		if !ok {
			continue
		}
		won, err := s.putKey(ctx, d.IdempotencyKey, d.ID)
		if err == nil && !won {
			err = s.deleteAll(ctx, []item{key(pkDelivery, idKey(d.ID))})
		}
		if err != nil {
			return n, s.errorf("import deliveries: delivery %d: %w", d.ID, err)
		}
		if won {
			n++
		}
	}
	return n, nil
}
