package dynamodb_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

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
