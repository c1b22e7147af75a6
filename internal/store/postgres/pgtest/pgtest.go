// Package pgtest gives tests of other packages a PostgreSQL schema of their
// own on the test server named by LABTRAIL_TEST_POSTGRES_URL.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the test server's URL. Unset, PostgreSQL tests skip; set and
// unreachable, they fail.
const Env = "LABTRAIL_TEST_POSTGRES_URL"

// ServerURL is the test server's URL, skipping tb when none is set.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(Env)
	if u == "" {
		tb.Skipf("%s not set: skipping PostgreSQL (e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", Env, Env)
	}
	return u
}

// Exec runs one statement on a connection of its own to base.
func Exec(tb testing.TB, base, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", Env, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// SchemaURL creates a new schema, dropped when tb ends, and returns the
// server's URL with search_path set to it: parallel tests never share
// tables.
func SchemaURL(tb testing.TB) string {
	tb.Helper()
	base := ServerURL(tb)
	var b [6]byte
	rand.Read(b[:])
	schema := "lt_" + hex.EncodeToString(b[:])
	Exec(tb, base, `CREATE SCHEMA `+schema)
	tb.Cleanup(func() { Exec(tb, base, `DROP SCHEMA `+schema+` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", Env, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
