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
	"path"
	"strings"
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
	// SQL is the part every SQL backend shares; the methods in this
	// package are what PostgreSQL does its own way.
	store.SQL[pgtype.Timestamptz]
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or key=value
// DSN; a search_path given there selects the schema) and migrates it to the
// current schema. Several processes may open the same database at once: the
// migration runs under an advisory lock. A schema migrated by a newer
// labtrail is refused (a *store.SchemaError) before anything is written.
func Open(ctx context.Context, url string) (*Store, error) {
	s, _, err := open(ctx, url, true)
	return s, err
}

// Connect connects to the database at url without migrating it: its store
// schema must be exactly the one this build knows, or Connect fails with a
// *store.SchemaError telling to run `labtrail migrate` (older) or a newer
// labtrail (newer). Replicas use it, so that a schema change happens once,
// explicitly, rather than in whichever replica starts first.
func Connect(ctx context.Context, url string) (*Store, error) {
	s, _, err := open(ctx, url, false)
	return s, err
}

// Migrate migrates the database at url and says which migrations it
// applied (none when it was up to date).
func Migrate(ctx context.Context, url string) ([]store.Migration, error) {
	s, applied, err := open(ctx, url, true)
	if err != nil {
		return nil, err
	}
	return applied, s.Close()
}

// defaultMaxConns is the pool size when the URL sets none (pgx would take
// the number of CPUs, at least 4): the job queue holds a connection for
// LISTEN and fetches, completes and elects on others, beside the API's
// and the workers' queries.
const defaultMaxConns = 10

func open(ctx context.Context, url string, migrate bool) (*Store, []store.Migration, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	s.SQL = store.SQL[pgtype.Timestamptz]{Name: "postgres", Dialect: dialect, Scan: scan, Query: s.query, Snapshot: s.snapshot, Exec: s.exec, Insert: s.insert, Tx: s.tx}
	known, err := latest()
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	have, err := s.SchemaVersion(ctx)
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	if have > known || (!migrate && have != known) {
		pool.Close()
		return nil, nil, fmt.Errorf("postgres: %w", &store.SchemaError{Part: "store", Have: have, Known: known})
	}
	var applied []store.Migration
	if migrate {
		if applied, err = s.migrate(ctx); err != nil {
			pool.Close()
			return nil, nil, fmt.Errorf("postgres: %w", err)
		}
	}
	return s, applied, nil
}

func latest() (int64, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, err
	}
	return store.LatestMigration(fsys)
}

// SchemaVersion is the store schema's goose version in the current schema,
// 0 when it has none. It only reads.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name = 'goose_db_version')`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// migrate runs the embedded migrations with goose, holding a session-level
// advisory lock keyed by the schema so that replicas starting together
// migrate one after the other, while stores in other schemas of the same
// database do not wait for each other.
func (s *Store) migrate(ctx context.Context) ([]store.Migration, error) {
	var schema *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("current schema: %w", err)
	}
	if schema == nil {
		return nil, errors.New("no schema to migrate: the search_path names no existing schema")
	}
	h := fnv.New64a()
	h.Write([]byte("labtrail-migrate:" + *schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		lock.WithLockTimeout(1, 600), // retry every second for 10 minutes
	)
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if err := s.rebuildFacts(ctx); err != nil {
		return nil, err
	}
	var applied []store.Migration
	for _, r := range res {
		if r.Source != nil {
			applied = append(applied, store.Migration{Part: "store", Version: r.Source.Version, Name: path.Base(r.Source.Path)})
		}
	}
	return applied, nil
}

// rebuildFacts derives the metric facts again where an older rule
// derived them (store.RebuildFacts), holding the lock that keeps replicas
// from doing it twice at once.
func (s *Store) rebuildFacts(ctx context.Context) error {
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE fact_version IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		_, err := store.RebuildFacts(ctx, dialect, scan,
			func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
				return runQuery(ctx, tx, stmt, args, read)
			},
			func(ctx context.Context, stmt string, args ...any) error {
				_, err := tx.Exec(ctx, stmt, args...)
				return err
			})
		return err
	})
	if err != nil {
		return fmt.Errorf("derive metric facts: %w", err)
	}
	return nil
}

// Pool is the underlying connection pool, for parts that keep their own
// tables in the same database (the job queue).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

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
