// Package dynamodb is the store on Amazon DynamoDB: store.Core in one
// table (docs/serverless.md describes its keys and indexes). It reaches
// DynamoDB through the AWS SDK's default configuration only (region,
// credentials, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DYNAMODB), so a local
// stand-in is an environment variable away.
//
// DynamoDB has transactions but dynalite, the stand-in the tests run on,
// has none, so nothing here uses them: each event is one item (its
// timeline a list inside it) written by one conditional write, and a call
// is validated whole before anything is written. A crash in the middle of
// a multi-event Upsert may leave some of its events written, each of them
// whole; running it again completes it (Upsert is idempotent).
package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// DefaultRetention is how long history is kept when no retention is
// given: seed 000's 30 days.
const DefaultRetention = 720 * time.Hour

// Store is store.Core on one DynamoDB table.
type Store struct {
	db    *dynamodb.Client
	table string
	// retention is how long an item is kept after it was last written
	// (its ttl); kinds overrides it for events of those kinds.
	retention time.Duration
	kinds     map[change.Kind]time.Duration
	now       func() time.Time
}

var _ store.Core = (*Store)(nil)

// Option sets up a Store.
type Option func(*Store)

// WithRetention sets how long history (events, deliveries, audit entries,
// digest records) is kept after labtrail last wrote it: all for every
// kind, kinds for events of the kinds named (as LABTRAIL_RETENTION says:
// "720h,job=168h"). A zero all keeps DefaultRetention.
func WithRetention(all time.Duration, kinds map[change.Kind]time.Duration) Option {
	return func(s *Store) {
		if all > 0 {
			s.retention = all
		}
		s.kinds = kinds
	}
}

// Open returns the store on table, which Create made. It loads the AWS
// SDK's default configuration; it does not check that the table exists
// (Ping does).
func Open(ctx context.Context, table string, opts ...Option) (*Store, error) {
	if table == "" {
		return nil, errors.New("dynamodb: no table name")
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("dynamodb: AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("dynamodb: no AWS region: set AWS_REGION (or AWS_PROFILE naming a profile with a region)")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("dynamodb: no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("dynamodb: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on AWS the function's role gives them): %w", err)
	}
	s := &Store{db: dynamodb.NewFromConfig(cfg), table: table, retention: DefaultRetention, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Table is the table's name.
func (s *Store) Table() string { return s.table }

// Close implements store.Core; the SDK's client holds nothing to release.
func (s *Store) Close() error { return nil }

// Ping implements store.Core: the table exists and is active.
func (s *Store) Ping(ctx context.Context) error {
	out, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &s.table})
	if err != nil {
		return fmt.Errorf("dynamodb: ping: %w", err)
	}
	if st := out.Table.TableStatus; st != types.TableStatusActive && st != types.TableStatusUpdating {
		return fmt.Errorf("dynamodb: ping: table %s is %s", s.table, st)
	}
	return nil
}

// Key and index attribute names. Every item has pk and sk; the index
// attributes are set only on the items each index serves, so an index
// holds nothing else (a sparse index).
const (
	attrPK = "pk"
	attrSK = "sk"
	// Events: gsi "all" (every event newest first, and by id),
	// one per List filter, each with the event's position in List's
	// order (occurred_at, id) as sort key "ok".
	attrAll     = "g_all"
	attrKind    = "g_kind"
	attrProject = "g_pid"
	attrPath    = "g_path"
	attrAuthor  = "g_author"
	attrState   = "g_state"
	attrConn    = "g_conn"
	attrOrder   = "ok"
	attrID      = "event_id"
	// Deliveries: by status, oldest id first.
	attrDStatus = "g_dstatus"
	attrDSort   = "dsk"
	// attrTTL is DynamoDB's time to live attribute (epoch seconds).
	attrTTL = "ttl"
)

// Index names.
const (
	indexAll      = "all_by_time"
	indexAllByID  = "all_by_id"
	indexKind     = "kind_by_time"
	indexProject  = "project_by_time"
	indexPath     = "path_by_time"
	indexAuthor   = "author_by_time"
	indexState    = "state_by_time"
	indexConn     = "connection_by_time"
	indexDelivery = "delivery_by_status"
)

// TimeToLiveAttribute is the attribute DynamoDB's TTL reads.
const TimeToLiveAttribute = attrTTL

// Create creates table with its indexes (on-demand billing), waits for it
// to be active, and turns on time to live on its ttl attribute. A table
// that exists is left as it is, its TTL turned on. A DynamoDB without
// UpdateTimeToLive (dynalite) keeps items until they are deleted; the
// store leaves expired items out of every read either way, so that is
// returned as a warning, not an error.
func Create(ctx context.Context, table string, log *slog.Logger) (warning string, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := Open(ctx, table)
	if err != nil {
		return "", err
	}
	_, err = s.db.CreateTable(ctx, tableInput(table))
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		log.Info("dynamodb table exists", "table", table)
	case err != nil:
		return "", fmt.Errorf("dynamodb: create table %s: %w", table, err)
	default:
		log.Info("dynamodb table created", "table", table)
	}
	w := dynamodb.NewTableExistsWaiter(s.db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 2*time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: &table}, 5*time.Minute); err != nil {
		return "", fmt.Errorf("dynamodb: table %s: %w", table, err)
	}
	if err := checkIndexes(ctx, s.db, table); err != nil {
		return "", err
	}
	return EnableTTL(ctx, s.db, table)
}

// checkIndexes refuses a table that lacks an index the store queries (one
// made by something else, under the same name), naming what it lacks.
func checkIndexes(ctx context.Context, db *dynamodb.Client, table string) error {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		return fmt.Errorf("dynamodb: table %s: %w", table, err)
	}
	have := map[string]bool{}
	for _, g := range out.Table.GlobalSecondaryIndexes {
		have[aws.ToString(g.IndexName)] = true
	}
	var missing []string
	for _, g := range tableInput(table).GlobalSecondaryIndexes {
		if !have[aws.ToString(g.IndexName)] {
			missing = append(missing, aws.ToString(g.IndexName))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dynamodb: table %s exists without the indexes %s: it was not made by labtrail migrate; use another table name",
			table, strings.Join(missing, ", "))
	}
	return nil
}

// EnableTTL turns on time to live on table's ttl attribute unless it is
// on already (UpdateTimeToLive refuses to turn on a TTL that is on). See
// Create for the warning.
func EnableTTL(ctx context.Context, db *dynamodb.Client, table string) (warning string, err error) {
	const noTTL = "this DynamoDB has no time to live (%s is an unknown operation): expired items are left out of reads but not deleted"
	desc, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	switch {
	case isUnknownOperation(err):
		return fmt.Sprintf(noTTL, "DescribeTimeToLive"), nil
	case err != nil:
		return "", fmt.Errorf("dynamodb: time to live of %s: %w", table, err)
	}
	if d := desc.TimeToLiveDescription; d != nil && aws.ToString(d.AttributeName) == attrTTL &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		return "", nil
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: &table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrTTL), Enabled: aws.Bool(true),
		},
	})
	switch {
	case isUnknownOperation(err):
		return fmt.Sprintf(noTTL, "UpdateTimeToLive"), nil
	case err != nil:
		return "", fmt.Errorf("dynamodb: time to live on %s: %w", table, err)
	}
	return "", nil
}

// isUnknownOperation says DynamoDB does not know the operation called
// (dynalite's answer to the TTL operations).
func isUnknownOperation(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "UnknownOperationException"
}

func tableInput(table string) *dynamodb.CreateTableInput {
	str := func(names ...string) []types.AttributeDefinition {
		var out []types.AttributeDefinition
		for _, n := range names {
			out = append(out, types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS})
		}
		return out
	}
	gsi := func(name, hash, rng string) types.GlobalSecondaryIndex {
		return types.GlobalSecondaryIndex{
			IndexName: aws.String(name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(rng), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}
	}
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: str(attrPK, attrSK, attrAll, attrKind, attrProject, attrPath, attrAuthor, attrState,
			attrConn, attrOrder, attrID, attrDStatus, attrDSort),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			gsi(indexAll, attrAll, attrOrder),
			gsi(indexAllByID, attrAll, attrID),
			gsi(indexKind, attrKind, attrOrder),
			gsi(indexProject, attrProject, attrOrder),
			gsi(indexPath, attrPath, attrOrder),
			gsi(indexAuthor, attrAuthor, attrOrder),
			gsi(indexState, attrState, attrOrder),
			gsi(indexConn, attrConn, attrOrder),
			gsi(indexDelivery, attrDStatus, attrDSort),
		},
	}
}

// Attribute values.

type item = map[string]types.AttributeValue

func avS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func avN(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
func avB(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }
func avBool(v bool) types.AttributeValue {
	return &types.AttributeValueMemberBOOL{Value: v}
}

// setS sets a string attribute, or leaves it out when empty (DynamoDB
// refuses an empty string as an index key).
func setS(it item, name, v string) {
	if v != "" {
		it[name] = avS(v)
	}
}

// setT sets a time attribute as Unix nanoseconds, or leaves it out for
// the zero time.
func setT(it item, name string, t time.Time) {
	if !t.IsZero() {
		it[name] = avN(t.UnixNano())
	}
}

func setN(it item, name string, v int64) {
	if v != 0 {
		it[name] = avN(v)
	}
}

func getS(it item, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(it item, name string) int64 {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getB(it item, name string) []byte {
	if v, ok := it[name].(*types.AttributeValueMemberB); ok {
		return v.Value
	}
	return nil
}

func getBool(it item, name string) bool {
	v, ok := it[name].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

func getT(it item, name string) time.Time {
	if _, ok := it[name]; !ok {
		return time.Time{}
	}
	return time.Unix(0, getN(it, name)).UTC()
}

func key(pk, sk string) item { return item{attrPK: avS(pk), attrSK: avS(sk)} }

// ttl is the expiry of an item written now that is kept for keep.
func (s *Store) ttl(keep time.Duration) types.AttributeValue {
	return avN(s.now().Add(keep).Unix())
}

// expired says whether an item's ttl has passed: DynamoDB deletes such
// items only eventually, so every read leaves them out itself.
func (s *Store) expired(it item) bool {
	_, has := it[attrTTL]
	return has && getN(it, attrTTL) < s.now().Unix()
}

// live is the filter of expired items, for a Query's FilterExpression;
// its value is :now.
const live = "(attribute_not_exists(#ttl) OR #ttl >= :now)"

func (s *Store) liveValues(vs item) item {
	if vs == nil {
		vs = item{}
	}
	vs[":now"] = avN(s.now().Unix())
	return vs
}

func liveNames(ns map[string]string) map[string]string {
	if ns == nil {
		ns = map[string]string{}
	}
	ns["#ttl"] = attrTTL
	return ns
}

// isConditionFailed says a conditional write found the item otherwise.
func isConditionFailed(err error) bool {
	var c *types.ConditionalCheckFailedException
	return errors.As(err, &c)
}

// query runs in, page after page (DynamoDB's LastEvaluatedKey), handing
// each item to each until it says stop.
func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, each func(item) (more bool)) error {
	in.TableName = &s.table
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return err
		}
		for _, it := range out.Items {
			if !each(it) {
				return nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// partition reads every live item of one partition in sort key order.
func (s *Store) partition(ctx context.Context, pk string) ([]item, error) {
	var out []item
	err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk"),
		FilterExpression:          aws.String(live),
		ExpressionAttributeNames:  liveNames(map[string]string{"#pk": attrPK}),
		ExpressionAttributeValues: s.liveValues(item{":pk": avS(pk)}),
		ConsistentRead:            aws.Bool(true),
	}, func(it item) bool { out = append(out, it); return true })
	return out, err
}

// getItem reads one item consistently; nil when there is none or it has
// expired.
func (s *Store) getItem(ctx context.Context, k item) (item, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 || s.expired(out.Item) {
		return nil, nil
	}
	return out.Item, nil
}

// backoff waits before the try-th call of a batch whose earlier call left
// items unprocessed (DynamoDB throttled it): not before the first,
// then 50 ms doubling up to a second.
func backoff(ctx context.Context, try int) error {
	if try == 0 {
		return nil
	}
	t := time.NewTimer(min(50*time.Millisecond<<min(try-1, 5), time.Second))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// next takes the next number of a counter (an atomic ADD).
func (s *Store) next(ctx context.Context, counter string) (int64, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(pkCounter, counter),
		UpdateExpression:          aws.String("ADD #n :one"),
		ExpressionAttributeNames:  map[string]string{"#n": "n"},
		ExpressionAttributeValues: item{":one": avN(1)},
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, err
	}
	return getN(out.Attributes, "n"), nil
}

// atLeast moves a counter to at least n, so imported ids are never
// handed out again.
func (s *Store) atLeast(ctx context.Context, counter string, n int64) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(pkCounter, counter),
		UpdateExpression:          aws.String("SET #n = :n"),
		ConditionExpression:       aws.String("attribute_not_exists(#n) OR #n < :n"),
		ExpressionAttributeNames:  map[string]string{"#n": "n"},
		ExpressionAttributeValues: item{":n": avN(n)},
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

// Partition keys of the items that are not events.
const (
	pkCounter  = "counter"
	pkProjects = "projects"
	pkSync     = "sync"
	pkAudit    = "audit"
	pkDelivery = "delivery"
	pkDigest   = "digest"
	// Events are "event#<id>", delivery idempotency keys
	// "delivery-key#<key>".
	pkEventPrefix  = "event#"
	pkDeliveryKey  = "delivery-key#"
	skOne          = "-"
	counterAudit   = "audit"
	counterDeliver = "delivery"
)

// idKey is an id as a sort key: fixed width, so string order is number
// order.
func idKey(id int64) string { return fmt.Sprintf("%020d", id) }

func (s *Store) errorf(format string, a ...any) error {
	return fmt.Errorf("dynamodb: "+format, a...)
}
