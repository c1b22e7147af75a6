// Package postgres is labtrail's PostgreSQL store, for deployments with
// several replicas or more data than one SQLite file should hold. It keeps
// the semantics of store/sqlite (see storetest for the shared contract).
//
// Times are timestamptz, exact to the microsecond: Upsert truncates incoming
// times to the microsecond before comparing or hashing them, so an event read
// back and stored again is the same event. Go's zero time is stored as
// 0001-01-01 00:00:00 UTC and read back as the zero time.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/labtrail/labtrail/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or key=value
// DSN; a search_path given there selects the schema) and migrates it to the
// current schema. Several processes may open the same database at once: the
// migration runs under an advisory lock.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// migrate runs the embedded migrations with goose, holding a session-level
// advisory lock keyed by the schema so that replicas starting together
// migrate one after the other, while stores in other schemas of the same
// database do not wait for each other.
func (s *Store) migrate(ctx context.Context) error {
	var schema *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	if schema == nil {
		return errors.New("no schema to migrate: the search_path names no existing schema")
	}
	h := fnv.New64a()
	h.Write([]byte("labtrail-migrate:" + *schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		lock.WithLockTimeout(1, 600), // retry every second for 10 minutes
	)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Pool is the underlying connection pool, for parts that keep their own
// tables in the same database (the job queue).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping reports whether the database can serve requests.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1 FROM events LIMIT 1").Scan(&one); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// maxAttempts bounds how often withTx retries a transaction that failed on
// a serialization failure or deadlock.
const maxAttempts = 5

// withTx runs fn in a transaction, committing if it returns nil and rolling
// back otherwise, so no call stores half its work. A serialization failure
// or deadlock runs fn again from the start.
func (s *Store) withTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || attempt == maxAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * 5 * time.Millisecond)
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// ts is t as stored: UTC, truncated to PostgreSQL's microseconds. The zero
// time stays the zero time (0001-01-01 UTC in the database).
func ts(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// fromTS is a stored time as it is handed out: UTC, zero for the zero time.
func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid || t.Time.IsZero() {
		return time.Time{}
	}
	return t.Time.UTC()
}

type scanner interface{ Scan(dest ...any) error }

// limit is store.PageLimit with the listing named in its error.
func limit(what string, n int) (int, error) {
	l, err := store.PageLimit(n)
	if err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", what, err)
	}
	return l, nil
}
