package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// smallStore refuses deliveries above limit bytes as DynamoDB's store
// refuses those beyond an item.
type smallStore struct {
	store.DeliveryStore
	limit int
}

func (s smallStore) PutDelivery(ctx context.Context, d store.Delivery) (int64, bool, error) {
	if len(d.Body) > s.limit {
		return 0, false, fmt.Errorf("delivery of %d bytes: %w", len(d.Body), store.ErrTooLarge)
	}
	return s.DeliveryStore.PutDelivery(ctx, d)
}

// A delivery the store cannot hold is the sender's problem, answered 413
// (GitLab does not retry it), not 503; the store keeps what it had.
func TestWebhookTooLargeForTheStoreIs413(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{"s"}}, smallStore{st, 1000}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	post := func(key, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/v1/webhooks/gitlab", strings.NewReader(body))
		req.Header.Set("X-Gitlab-Token", "s")
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		req.Header.Set("Idempotency-Key", key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := post("small", `{"object_kind":"push"}`); w.Code != http.StatusOK {
		t.Fatalf("a small delivery: %d %s", w.Code, w.Body)
	}
	w := post("big", `{"object_kind":"push","x":"`+strings.Repeat("a", 2000)+`"}`)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "too large") {
		t.Fatalf("a delivery too large for the store: %d %s, want 413 saying so", w.Code, w.Body)
	}
	page, err := st.ListDeliveries(context.Background(), store.DeliveryFilter{})
	if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].IdempotencyKey != "small" {
		t.Fatalf("stored after the refusal: %+v %v, want the small delivery alone", page.Deliveries, err)
	}
}
