package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The database a LABTRAIL_DB value names is opened here, and only here:
//
//   - A SQLite file has one `labtrail serve` at a time (a lock file beside
//     it). Its schema, the store's and River's, is migrated on open, so a
//     new file just works; jobs a killed serve left running are put back
//     to available at start.
//   - PostgreSQL (postgres:// or postgresql:// URL; search_path in the URL
//     selects the schema) may have any number of replicas. They never
//     migrate: `labtrail migrate` does, once, before they start (say, as
//     an init container), and a replica refuses a schema that is not
//     exactly its own. Jobs of a dead replica are left running until
//     River's rescuer hands them to a living one (LABTRAIL_RESCUE_AFTER).
//
// Either way a schema migrated by a newer labtrail is refused before
// anything is written to it.

// isPostgres reports whether a LABTRAIL_DB value names PostgreSQL.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// displayDB is a LABTRAIL_DB value fit for logs and output: a PostgreSQL
// URL's password is masked.
func displayDB(db string) string {
	if !isPostgres(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// schemaHint adds what to do to a refused schema.
func schemaHint(db string, err error) error {
	if errors.Is(err, store.ErrSchemaOutdated) {
		return fmt.Errorf("%w\n(for example: LABTRAIL_DB=%s labtrail migrate)", err, displayDB(db))
	}
	return err
}

// openStore opens the store alone, for commands that run no job queue
// (sync): SQLite migrated on open, PostgreSQL as migrated already.
func openStore(ctx context.Context, db string) (store.Store, error) {
	if isDynamoDB(db) {
		return nil, errNeedsSQL(db, "this command")
	}
	if isPostgres(db) {
		st, err := postgres.Connect(ctx, db)
		if err != nil {
			return nil, schemaHint(db, err)
		}
		return st, nil
	}
	return sqlite.Open(ctx, db)
}

// checkBeforeCreate asks GitLab who the token is before a first run
// creates a SQLite database, so that a wrong token (or, for sync, an
// unreachable GitLab) leaves no empty database (and lock) behind. An
// existing database is not held back: a restart goes on while GitLab is
// away. serve (onlyRefused) starts even while GitLab cannot be reached —
// it receives webhooks and its poller retries — and stops only when
// GitLab answered and refused the token.
func checkBeforeCreate(ctx context.Context, c config, log *slog.Logger, onlyRefused bool) error {
	if isPostgres(c.DB) || isDynamoDB(c.DB) {
		return nil
	}
	if _, err := os.Stat(c.DB); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	gl, err := newClient(c, log, nil)
	if err != nil {
		return err
	}
	if _, err := gl.Check(ctx); err != nil {
		if onlyRefused && !errors.Is(err, gitlab.ErrUnauthorized) && !errors.Is(err, gitlab.ErrForbidden) {
			log.Warn("GitLab did not answer the token check; serving anyway, the poller retries", "err", err)
			return nil
		}
		return fmt.Errorf("%w\n(%s not created: it is made once GitLab accepts the token)", err, c.DB)
	}
	return nil
}

// database is a store and what its job queue is built on.
type database struct {
	store.Store
	pool  *pgxpool.Pool // PostgreSQL
	qdb   *sql.DB       // SQLite: the queue's own pool on the file
	close []func()
}

// openForServe opens the store and readies a job queue beside it; on
// SQLite it first takes the file's serve lock.
func openForServe(ctx context.Context, db string) (*database, error) {
	d := &database{}
	if isDynamoDB(db) {
		return nil, errNeedsSQL(db, "serve")
	}
	if isPostgres(db) {
		st, err := postgres.Connect(ctx, db)
		if err != nil {
			return nil, schemaHint(db, err)
		}
		d.Store, d.pool = st, st.Pool()
		d.close = append(d.close, func() { st.Close() })
		return d, nil
	}
	unlock, err := lockDB(db)
	if err != nil {
		return nil, err
	}
	d.close = append(d.close, unlock)
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.Store = st
	d.close = append(d.close, func() { st.Close() })
	if d.qdb, err = sql.Open("sqlite", sqlite.DSN(db)); err != nil {
		d.Close()
		return nil, fmt.Errorf("open job queue in %s: %w", db, err)
	}
	d.close = append(d.close, func() { d.qdb.Close() })
	return d, nil
}

// newQueue builds the job queue on the database.
func (d *database) newQueue(ctx context.Context, cfg jobs.Config) (*jobs.Queue, error) {
	if d.pool != nil {
		return jobs.NewPostgres(ctx, d.pool, cfg)
	}
	return jobs.NewSQLite(ctx, d.qdb, cfg)
}

// Close closes what openForServe opened, the lock last.
func (d *database) Close() {
	for i := len(d.close) - 1; i >= 0; i-- {
		d.close[i]()
	}
}

// migrateDB applies the store's and River's migrations to db and says
// what it applied.
func migrateDB(ctx context.Context, db string) ([]store.Migration, error) {
	if isPostgres(db) {
		applied, err := postgres.Migrate(ctx, db)
		if err != nil {
			return nil, err
		}
		st, err := postgres.Connect(ctx, db)
		if err != nil {
			return applied, err
		}
		defer st.Close()
		q, err := jobs.MigratePostgres(ctx, st.Pool())
		return append(applied, q...), err
	}
	applied, err := sqlite.Migrate(ctx, db)
	if err != nil {
		return nil, err
	}
	qdb, err := sql.Open("sqlite", sqlite.DSN(db))
	if err != nil {
		return applied, fmt.Errorf("open job queue in %s: %w", db, err)
	}
	defer qdb.Close()
	qdb.SetMaxOpenConns(1)
	q, err := jobs.MigrateSQLite(ctx, qdb)
	return append(applied, q...), err
}

// lockDB takes an exclusive lock beside a SQLite database for the life of a
// serve process. One serve per file is what lets the job queue requeue jobs
// a killed process left running at once, instead of an hour later.
func lockDB(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another labtrail serve is using %s; stop it or set LABTRAIL_DB to another file (several replicas need PostgreSQL)", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// replicaID names this process among the replicas in River's tables
// (river_leader, each job's attempted_by): host, pid and start time.
func replicaID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	host = strings.ReplaceAll(host, ".", "_")
	if len(host) > 40 {
		host = host[:40]
	}
	started := strings.ReplaceAll(time.Now().UTC().Format("20060102T150405.000000"), ".", "_")
	return fmt.Sprintf("%s_pid%d_%s", host, os.Getpid(), started)
}

// A DynamoDB table (LABTRAIL_DB=dynamodb://TABLE) holds store.Core: what
// sync, webhooks and the read API need, which is what the Lambda runs
// (docs/serverless.md). It is created by `labtrail migrate`, filled by
// `labtrail sync` or `labtrail migrate --from`; the rest of labtrail
// (serve's job queue, metrics, sessions, archive, connections) needs
// SQLite or PostgreSQL. API tokens are kept there too (`labtrail tokens`).

// dynamoPrefix starts a LABTRAIL_DB value that names a DynamoDB table.
const dynamoPrefix = "dynamodb://"

// isDynamoDB reports whether a LABTRAIL_DB value names a DynamoDB table.
func isDynamoDB(db string) bool { return strings.HasPrefix(db, dynamoPrefix) }

// dynamoTable is the table a dynamodb://TABLE value names, checked
// against DynamoDB's rule for table names.
func dynamoTable(db string) (string, error) {
	t := strings.TrimPrefix(db, dynamoPrefix)
	ok := len(t) >= 3 && len(t) <= 255
	for _, r := range t {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
	}
	if !ok {
		return "", fmt.Errorf("%q: a DynamoDB table name is 3 to 255 letters, digits, '_', '-' and '.' (dynamodb://TABLE)", db)
	}
	return t, nil
}

// errNeedsSQL is what a command that needs more than store.Core says
// of a DynamoDB table.
func errNeedsSQL(db, what string) error {
	return fmt.Errorf("%s: a DynamoDB table keeps events, projects, sync state, deliveries, the audit log, digests and API tokens only; "+
		"%s also needs the job queue, metrics, sessions, the archive or added connections, which only SQLite and PostgreSQL keep "+
		"(with DynamoDB, run sync, migrate, tokens, or the Lambda of docs/serverless.md)", db, what)
}

// openCore opens db for the commands that need only store.Core (sync,
// migrate --from/--to): a DynamoDB table too, its history kept as keep
// says (LABTRAIL_RETENTION; dynamodb.DefaultRetention when not set).
func openCore(ctx context.Context, db string, keep export.Retention) (store.Core, error) {
	if !isDynamoDB(db) {
		return openStore(ctx, db)
	}
	table, err := dynamoTable(db)
	if err != nil {
		return nil, err
	}
	st, err := dynamodb.Open(ctx, table, dynamodb.WithRetention(keep.All, keep.Kinds))
	if err != nil {
		return nil, err
	}
	if err := st.Ping(ctx); err != nil {
		return nil, fmt.Errorf("%w\n(create it with: labtrail migrate --db %s)", err, db)
	}
	return st, nil
}

// createDynamo creates db's table, indexes and TTL, and says so on w.
func createDynamo(ctx context.Context, db string, w io.Writer) error {
	table, err := dynamoTable(db)
	if err != nil {
		return err
	}
	warning, err := dynamodb.Create(ctx, table, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: table, indexes and time to live on attribute %s ready\n", db, dynamodb.TimeToLiveAttribute)
	if warning != "" {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	return nil
}

// dynamoRetentionSetting is LABTRAIL_RETENTION for the commands that
// write a DynamoDB table: serve's retention setting, read the same way,
// here how long the table's history is kept (the items' ttl).
var dynamoRetentionSetting = func() *setting {
	s := *settingOf(archiveSettings, "LABTRAIL_RETENTION")
	s.flag = ""
	s.help = "with LABTRAIL_DB=dynamodb://TABLE: how long history is kept after it was last written (DynamoDB's TTL), for every kind and per kind, e.g. 720h,job=168h; empty: 720h"
	return &s
}()

// tokenStore is what `labtrail tokens` uses of a store.
type tokenStore interface {
	store.TokenStore
	Close() error
}

// openTokens opens db for `labtrail tokens`: a DynamoDB table keeps API
// tokens too, so that the tokens made there open the Lambda's API.
func openTokens(ctx context.Context, db string) (tokenStore, error) {
	if !isDynamoDB(db) {
		return openStore(ctx, db)
	}
	st, err := openCore(ctx, db, export.Retention{})
	if err != nil {
		return nil, err
	}
	return st.(*dynamodb.Store), nil
}
