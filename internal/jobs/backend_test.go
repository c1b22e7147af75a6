package jobs_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// newQueueFunc builds a queue on a backend's database.
type newQueueFunc func(ctx context.Context, cfg jobs.Config) (*jobs.Queue, error)

// backend is a database the queue runs on, with the store beside it.
type backend struct {
	name string
	// open returns a fresh store, a database/sql handle on the same
	// database for looking at River's tables, and a queue constructor.
	open func(t *testing.T) (store.Store, *sql.DB, newQueueFunc)
}

var backends = []backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}

// forEachBackend runs fn on SQLite and on PostgreSQL (in a schema of its
// own; skipped without LABTRAIL_TEST_POSTGRES_URL, failing when it is set
// and the server cannot be reached).
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

func openSQLite(t *testing.T) (store.Store, *sql.DB, newQueueFunc) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	qdb, err := sql.Open("sqlite", sqlite.DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qdb.Close() })
	return st, qdb, func(ctx context.Context, cfg jobs.Config) (*jobs.Queue, error) {
		return jobs.NewSQLite(ctx, qdb, cfg)
	}
}

func openPostgres(t *testing.T) (store.Store, *sql.DB, newQueueFunc) {
	t.Helper()
	return openPostgresURL(t, pgtest.SchemaURL(t))
}

// openPostgresURL opens the store at u, migrating the store and River as
// `labtrail migrate` does.
func openPostgresURL(t *testing.T, u string) (store.Store, *sql.DB, newQueueFunc) {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := jobs.MigratePostgres(ctx, st.Pool()); err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(st.Pool())
	t.Cleanup(func() { db.Close() })
	return st, db, func(ctx context.Context, cfg jobs.Config) (*jobs.Queue, error) {
		return jobs.NewPostgres(ctx, st.Pool(), cfg)
	}
}
