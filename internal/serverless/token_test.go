package serverless_test

import (
	"context"
	"testing"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

func createToken(t *testing.T, st *sqlite.Store) string {
	t.Helper()
	raw, _, err := auth.NewTokens(st).Create(context.Background(), "reader", auth.ScopeRead, 0)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
