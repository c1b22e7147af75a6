package dynamodb_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
)

// fakeTTL speaks the DynamoDB JSON protocol for the two TTL operations
// and records what it was asked.
type fakeTTL struct {
	status string // DescribeTimeToLive's answer
	mu     sync.Mutex
	calls  []string
	update map[string]any
}

func (f *fakeTTL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, target)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	switch target {
	case "DynamoDB_20120810.DescribeTimeToLive":
		json.NewEncoder(w).Encode(map[string]any{"TimeToLiveDescription": map[string]any{
			"TimeToLiveStatus": f.status, "AttributeName": "ttl"}})
	case "DynamoDB_20120810.UpdateTimeToLive":
		var in map[string]any
		json.Unmarshal(body, &in)
		f.mu.Lock()
		f.update = in
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"TimeToLiveSpecification": in["TimeToLiveSpecification"]})
	default:
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"__type": "com.amazon.coral.service#UnknownOperationException"})
	}
}

func ttlClient(t *testing.T, h http.Handler) *awsdynamodb.Client {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return awsdynamodb.NewFromConfig(cfg)
}

// EnableTTL sends UpdateTimeToLive for the table's ttl attribute, enabled,
// when DynamoDB says TTL is off, and nothing when it is on already.
func TestEnableTTLRequest(t *testing.T) {
	off := &fakeTTL{status: "DISABLED"}
	warning, err := dynamodb.EnableTTL(context.Background(), ttlClient(t, off), "history")
	if err != nil || warning != "" {
		t.Fatalf("EnableTTL = %q, %v", warning, err)
	}
	if len(off.calls) != 2 || off.calls[1] != "DynamoDB_20120810.UpdateTimeToLive" {
		t.Fatalf("calls %v, want DescribeTimeToLive then UpdateTimeToLive", off.calls)
	}
	spec, _ := off.update["TimeToLiveSpecification"].(map[string]any)
	if off.update["TableName"] != "history" || spec["AttributeName"] != "ttl" || spec["Enabled"] != true {
		t.Errorf("UpdateTimeToLive request %v, want table history, attribute ttl, enabled", off.update)
	}

	on := &fakeTTL{status: "ENABLED"}
	if warning, err := dynamodb.EnableTTL(context.Background(), ttlClient(t, on), "history"); err != nil || warning != "" {
		t.Fatalf("EnableTTL on a table with TTL = %q, %v", warning, err)
	}
	if len(on.calls) != 1 {
		t.Errorf("calls %v, want DescribeTimeToLive only", on.calls)
	}
}

// A DynamoDB that knows no TTL operation (dynalite) gives a warning, not
// an error; another error is an error.
func TestEnableTTLUnknownOperation(t *testing.T) {
	unknown := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"com.amazon.coral.service#UnknownOperationException"}`)
	})
	warning, err := dynamodb.EnableTTL(context.Background(), ttlClient(t, unknown), "history")
	if err != nil || warning == "" {
		t.Fatalf("EnableTTL = %q, %v; want a warning", warning, err)
	}
	denied := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}`)
	})
	if _, err := dynamodb.EnableTTL(context.Background(), ttlClient(t, denied), "history"); err == nil {
		t.Fatal("EnableTTL on a missing table succeeded")
	}
}

// Every read leaves out what has expired, though dynalite (like DynamoDB,
// for a while) still holds it; a write of the same id starts afresh.
func TestExpiredItemsLeftOut(t *testing.T) {
	s := open(t, dynamodb.WithRetention(time.Hour, map[change.Kind]time.Duration{change.KindPipeline: time.Minute}))
	ctx := context.Background()
	now := time.Now()
	dynamodb.SetClock(s, func() time.Time { return now })
	mr := change.Event{ID: "mr-1-1", Kind: change.KindMergeRequest, ProjectID: 1, ProjectPath: "g/p", State: "opened",
		UpdatedAt: now.Add(-time.Hour), Source: change.SourcePoll}
	pl := change.Event{ID: "pipeline-1-1", Kind: change.KindPipeline, ProjectID: 1, ProjectPath: "g/p", State: "success",
		UpdatedAt: now.Add(-time.Hour), Source: change.SourcePoll}
	if _, err := s.Upsert(ctx, mr, pl); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutDelivery(ctx, store.Delivery{IdempotencyKey: "k", EventType: "Push Hook", Body: []byte("{}"), ReceivedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, store.AuditEntry{Time: now, Method: "GET", Path: "/api/v4/projects"}); err != nil {
		t.Fatal(err)
	}

	// Two minutes on: the pipeline (kept a minute) is gone, the rest stays.
	now = now.Add(2 * time.Minute)
	if _, _, err := s.Get(ctx, pl.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of an expired event: %v, want ErrNotFound", err)
	}
	if n, err := s.Count(ctx, ""); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
	if n, err := s.Count(ctx, change.KindPipeline); err != nil || n != 0 {
		t.Errorf("Count(pipeline) = %d, %v; want 0", n, err)
	}
	page, err := s.List(ctx, store.Filter{ProjectID: 1})
	if err != nil || len(page.Events) != 1 || page.Events[0].ID != mr.ID {
		t.Errorf("List = %+v, %v; want only %s", page.Events, err, mr.ID)
	}
	if v, err := s.Versions(ctx, []string{mr.ID, pl.ID}); err != nil || len(v) != 1 {
		t.Errorf("Versions = %v, %v; want %s only", v, err, mr.ID)
	}
	if v, err := s.VersionsByPrefix(ctx, "pipeline-"); err != nil || len(v) != 0 {
		t.Errorf("VersionsByPrefix = %v, %v; want none", v, err)
	}
	if hs, err := s.ExportEvents(ctx, "", 10); err != nil || len(hs) != 1 {
		t.Errorf("ExportEvents = %d histories, %v; want 1", len(hs), err)
	}

	// Two hours on: everything is gone.
	now = now.Add(2 * time.Hour)
	if n, err := s.Count(ctx, ""); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0", n, err)
	}
	if page, err := s.List(ctx, store.Filter{}); err != nil || len(page.Events) != 0 {
		t.Errorf("List = %+v, %v; want none", page.Events, err)
	}
	if p, err := s.ListDeliveries(ctx, store.DeliveryFilter{}); err != nil || len(p.Deliveries) != 0 {
		t.Errorf("ListDeliveries = %+v, %v; want none", p.Deliveries, err)
	}
	if p, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(p.Entries) != 0 {
		t.Errorf("ListAudit = %+v, %v; want none", p.Entries, err)
	}
	// Stored again, as new: the expired item does not count.
	r, err := s.Upsert(ctx, mr)
	if err != nil || r.Inserted != 1 {
		t.Errorf("Upsert after expiry = %+v, %v; want inserted", r, err)
	}
	if _, dup, err := s.PutDelivery(ctx, store.Delivery{IdempotencyKey: "k", EventType: "Push Hook", Body: []byte("{}"), ReceivedAt: now}); err != nil || dup {
		t.Errorf("PutDelivery after expiry: duplicate %v, %v; want stored anew", dup, err)
	}
	if _, tl, err := s.Get(ctx, mr.ID); err != nil || len(tl) != 1 {
		t.Errorf("timeline after re-insert: %v, %v; want one entry", tl, err)
	}
}

// Create leaves a table it made as it is, and refuses one of that name
// made otherwise, naming the indexes it lacks.
func TestCreateChecksAnExistingTable(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if _, err := dynamodb.Create(ctx, s.Table(), nil); err != nil {
		t.Fatalf("Create again: %v", err)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := awsdynamodb.NewFromConfig(cfg)
	other := s.Table() + "-other"
	_, err = db.CreateTable(ctx, &awsdynamodb.CreateTableInput{
		TableName:            &other,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.Create(ctx, other, nil); err == nil || !strings.Contains(err.Error(), "all_by_time") {
		t.Fatalf("Create on a table made otherwise: %v; want the missing indexes named", err)
	}
}
