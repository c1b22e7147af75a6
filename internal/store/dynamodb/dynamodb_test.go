package dynamodb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
	"github.com/labtrail/labtrail/internal/store/dynamodb/dynalitetest"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

var tables atomic.Int64

// open creates a fresh table on dynalite and opens the store on it.
func open(t testing.TB, opts ...dynamodb.Option) *dynamodb.Store {
	t.Helper()
	dynalitetest.Env(t)
	ctx := context.Background()
	table := fmt.Sprintf("labtrail-test-%d", tables.Add(1))
	warning, err := dynamodb.Create(ctx, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	if warning == "" {
		t.Fatal("dynalite has no TTL, yet Create gave no warning")
	}
	s, err := dynamodb.Open(ctx, table, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunCore(t, func(t *testing.T) store.Core { return open(t) })
}

// The server's API tokens, kept on the table too, open the Lambda's API.
func TestTokens(t *testing.T) {
	storetest.RunTokens(t, func(t *testing.T) store.TokenStore { return open(t) })
}

// A webhook body above what one item holds raw is stored gzipped and
// comes back as it was; one too big even so is refused with an error.
func TestLargeDeliveryBodies(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	big := []byte(`{"object_kind":"push","commits":[` + strings.Repeat(`{"id":"0123456789abcdef","message":"fix"},`, 20000) + `{}]}`)
	id, _, err := s.PutDelivery(ctx, store.Delivery{IdempotencyKey: "big", EventType: "Push Hook", Body: big, ReceivedAt: time.Now()})
	if err != nil {
		t.Fatalf("a %d-byte body: %v", len(big), err)
	}
	d, err := s.Delivery(ctx, id)
	if err != nil || !bytes.Equal(d.Body, big) {
		t.Fatalf("the body came back %d bytes (%v), want the %d stored", len(d.Body), err, len(big))
	}
	res, err := s.ConvertDeliveries(ctx, store.DeliveryClaim{Limit: 1}, func(ds []store.Delivery) []store.Conversion {
		if len(ds) != 1 || !bytes.Equal(ds[0].Body, big) {
			t.Errorf("the converter got %d deliveries, not the big body", len(ds))
		}
		return []store.Conversion{{ID: id, Status: store.DeliveryStoredRaw}}
	})
	if err != nil || len(res.Deliveries) != 1 {
		t.Fatalf("convert: %+v %v", res, err)
	}
	noise := make([]byte, 600<<10)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	if _, _, err := s.PutDelivery(ctx, store.Delivery{IdempotencyKey: "noise", EventType: "Push Hook", Body: noise, ReceivedAt: time.Now()}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("a 600 KiB incompressible body into a 400 KB item: %v, want store.ErrTooLarge", err)
	}
}
