package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// Backend is a store implementation that tests and benchmarks of other
// packages run against, so their figures compare across backends.
type Backend struct {
	Name string
	// Open returns a new, empty store that is closed (on PostgreSQL, its
	// schema dropped) when tb ends. It skips tb when the backend cannot
	// run here (PostgreSQL without pgtest.Env set).
	Open func(tb testing.TB) store.Store
}

// Backends are every store labtrail can run on that needs no cloud:
// SQLite in a temporary file and PostgreSQL in a schema of its own.
func Backends() []Backend {
	return []Backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}
}

func openSQLite(tb testing.TB) store.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "labtrail.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(tb testing.TB) store.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), pgtest.SchemaURL(tb))
	if err != nil {
		tb.Fatalf("open PostgreSQL store: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
