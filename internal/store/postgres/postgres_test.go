package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

const envURL = "LABTRAIL_TEST_POSTGRES_URL"

// serverURL is the test server's URL; without one the tests skip. With one,
// an unreachable server fails them.
func serverURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		t.Skipf("%s not set: skipping PostgreSQL tests (e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envURL, envURL)
	}
	return u
}

// admin runs one statement on its own connection.
func admin(t testing.TB, base, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", envURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// schemaURL creates a fresh schema, dropped when t ends, and returns base
// with search_path set to it.
func schemaURL(t testing.TB) string {
	t.Helper()
	base := serverURL(t)
	var b [6]byte
	rand.Read(b[:])
	schema := "lt_" + hex.EncodeToString(b[:])
	admin(t, base, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { admin(t, base, `DROP SCHEMA `+schema+` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", envURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openURL(t testing.TB, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// open returns a store on a schema of its own.
func open(t testing.TB) *postgres.Store {
	t.Helper()
	return openURL(t, schemaURL(t))
}

func TestConformance(t *testing.T) {
	serverURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func migrationRows(t *testing.T, s *postgres.Store) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(t.Context(), `SELECT COUNT(*) FROM goose_db_version`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Replicas starting together migrate one at a time and all succeed; a
// reopen runs nothing again.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	u := schemaURL(t)
	const replicas = 4
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(t.Context(), u)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	n := migrationRows(t, stores[0])
	e := change.Event{ID: "mr-1-1", Kind: change.KindMergeRequest, UpdatedAt: time.Now(), Source: change.SourcePoll}
	if _, err := stores[1].Upsert(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	s := openURL(t, u)
	if got := migrationRows(t, s); got != n {
		t.Errorf("goose_db_version has %d rows after reopening, had %d", got, n)
	}
	if c, err := s.Count(t.Context(), ""); err != nil || c != 1 {
		t.Errorf("Count after reopen = %d, %v", c, err)
	}
}

// The schema comes from the URL: a store in one schema sees nothing of
// another's.
func TestSchemasAreSeparate(t *testing.T) {
	a, b := open(t), open(t)
	e := change.Event{ID: "mr-1-1", Kind: change.KindMergeRequest, UpdatedAt: time.Now(), Source: change.SourcePoll}
	if _, err := a.Upsert(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Count(t.Context(), ""); err != nil || n != 0 {
		t.Errorf("other schema Count = %d, %v; want 0", n, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	serverURL(t) // only alongside the other PostgreSQL tests
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if s, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=5"); err == nil {
		s.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
}

func TestFactsRebuiltOnMigrate(t *testing.T) {
	u := schemaURL(t)
	s := openURL(t, u)
	storetest.FactsRebuilt(t, s, func(stmt string) {
		if _, err := s.Pool().Exec(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}, func() store.Store {
		s.Close()
		return openURL(t, u)
	})
}
