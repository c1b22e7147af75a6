// Package sqlite is labtrail's default store: one SQLite file, opened with
// the pure-Go modernc.org/sqlite driver so the binary needs no cgo.
//
// Times are kept as INTEGER unix nanoseconds in UTC, 0 for the zero time, so
// comparisons and the keyset order are exact; that limits them to the years
// 1678-2262, and Upsert rejects anything outside rather than store it wrong.
// An instant exactly at the Unix epoch reads back as the zero time.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/pressly/goose/v3"
	msqlite "modernc.org/sqlite"

	"github.com/labtrail/labtrail/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store on one SQLite file.
type Store struct {
	// SQL is the part every SQL backend shares; the methods below are
	// what SQLite does its own way.
	store.SQL[int64]
	db *sql.DB
	// write admits one writer at a time. SQLite serialises writers anyway;
	// queueing them here wakes the next one as soon as the last commits,
	// where SQLite's busy handler would poll with sleeps. busy_timeout is
	// still what coordinates with other pools on the file (the job queue).
	write chan struct{}
}

var _ store.Store = (*Store)(nil)

// DSN is the connection string Open uses for path. Other pools on the same
// file (the job queue) must use it too: WAL, a busy timeout instead of
// immediate SQLITE_BUSY errors, and BEGIN IMMEDIATE so a transaction takes
// the write lock up front instead of failing when it upgrades from read to
// write while another writer holds it.
func DSN(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		// Absolute, so that ":memory:" or a name starting with "file:" is
		// still a file on disk, as the caller asked.
		path = abs
	}
	// A file: URI, escaped, so '?', '#' and '%' in a path are part of it.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc +
		"?_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)" +
		// NORMAL loses at most the last commits on power loss, never
		// consistency, in WAL mode; FULL would fsync on every commit.
		"&_pragma=synchronous(NORMAL)" +
		// Reads map the file instead of copying each page out of it with
		// a system call into a 2 MB cache per connection: a metric over a
		// 90-day window reads thousands of pages, most of them again on
		// every request.
		"&_pragma=mmap_size(1073741824)" +
		"&_txlock=immediate"
}

// Open opens the database at path, creating the file if needed but not its
// directory, and migrates it to the current schema. A file it creates is
// readable by its owner only (0600), as SQLite then makes its -wal and
// -shm files: it holds raw webhook payloads. An existing file readable by
// others is left as it is, with a warning on the default logger. A database migrated by
// a newer labtrail is refused (a *store.SchemaError) before anything is
// written to it.
func Open(ctx context.Context, path string) (*Store, error) {
	s, _, err := open(ctx, path)
	return s, err
}

// Migrate migrates the database at path, creating it if needed, and says
// which migrations it applied (none when it was up to date).
func Migrate(ctx context.Context, path string) ([]store.Migration, error) {
	s, applied, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	return applied, s.Close()
}

func open(ctx context.Context, path string) (*Store, []store.Migration, error) {
	if path == "" {
		return nil, nil, errors.New("sqlite: no database path given")
	}
	if err := checkDir(path); err != nil {
		return nil, nil, err
	}
	existed := createPrivate(path)
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Connections are cheap to keep and each new one re-runs the pragmas.
	n := max(4, runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	s := &Store{db: db, write: make(chan struct{}, 1)}
	s.SQL = store.SQL[int64]{Name: "sqlite", Dialect: dialect, Scan: scan, Query: s.query, FactQuery: s.factQuery,
		Snapshot: s.snapshot, Exec: s.exec, Tx: s.tx,
		// AUTOINCREMENT moves past explicit ids by itself.
		Insert: func(ctx context.Context, _, stmt string, args ...[]any) (int, error) {
			return s.exec(ctx, stmt, args...)
		}}
	var applied []store.Migration
	err = lockedFor(path, func() error {
		// The first connection sets WAL mode, which a new file must
		// change to: SQLite answers a concurrent switch SQLITE_BUSY
		// without waiting, so the ping too waits for the lock.
		if err := db.PingContext(ctx); err != nil {
			removeCreated(path, existed)
			return &pingError{err}
		}
		var err error
		applied, err = s.migrate(ctx)
		return err
	})
	if pe := (*pingError)(nil); errors.As(err, &pe) {
		db.Close()
		return nil, nil, openError(path, existed, pe.err)
	}
	if err != nil {
		db.Close()
		var se *store.SchemaError
		if errors.As(err, &se) {
			return nil, nil, fmt.Errorf("sqlite: %s: %w", path, err)
		}
		return nil, nil, openError(path, existed, err)
	}
	if err := s.probeWrite(ctx); err != nil {
		db.Close()
		return nil, nil, openError(path, existed, err)
	}
	return s, applied, nil
}

type pingError struct{ err error }

func (e *pingError) Error() string { return e.err.Error() }

// lockedFor runs fn (the first connection and the migration) while holding
// an exclusive lock on a file beside the database: goose has no lock of its
// own for SQLite, and two processes opening a new file at once (serve, and
// a sync or a reader) would both create its tables and one would fail.
func lockedFor(path string, fn func() error) error {
	f, err := os.OpenFile(path+"-migrate.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		// A directory we may not write: the write probe reports it, and no
		// other process can be migrating a file it cannot write either.
		return fn()
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock for migration: %w", err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// migrate refuses a schema newer than the embedded migrations before it
// writes anything (goose itself would ignore versions it does not know),
// then applies what is missing.
func (s *Store) migrate(ctx context.Context) ([]store.Migration, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	known, err := store.LatestMigration(fsys)
	if err != nil {
		return nil, err
	}
	have, err := s.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if have > known {
		return nil, &store.SchemaError{Part: "store", Have: have, Known: known}
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.db, fsys)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		w := newFactWriter(tx)
		defer w.close()
		_, err := store.RebuildFacts(ctx, dialect, scan,
			func(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
				return runQuery(ctx, tx, stmt, args, read)
			}, w.exec)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("derive metric facts: %w", err)
	}
	return applied(res), nil
}

// applied lists what goose ran.
func applied(res []*goose.MigrationResult) []store.Migration {
	var out []store.Migration
	for _, r := range res {
		if r.Source != nil {
			out = append(out, store.Migration{Part: "store", Version: r.Source.Version, Name: filepath.Base(r.Source.Path)})
		}
	}
	return out
}

// SchemaVersion is the store schema's goose version, 0 for a database
// without one. It only reads.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var n int
	if err := s.db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// probeWrite fails if the file cannot be written. SQLite opens a file it may
// not write read-only without a word, and an up-to-date schema needs no
// write, so without this the first Upsert would be the one to find out.
func (s *Store) probeWrite(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// Rolled back: rewriting the header's user_version with its own value
	// is a write as far as the lock and permissions go, and changes nothing.
	defer tx.Rollback()
	var v int64
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
	return err
}

// DB is the underlying pool, for parts that keep their own tables in the
// same file.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error { return s.db.Close() }

// lock takes the write slot, giving up when ctx ends.
func (s *Store) lock(ctx context.Context) error {
	select {
	case s.write <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) unlock() { <-s.write }

// withTx runs fn in a write transaction, committing if it returns nil and
// rolling back otherwise, so no call stores half its work.
func (s *Store) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func checkDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sqlite: open %s: directory %s does not exist", path, dir)
	case err != nil:
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("sqlite: open %s: %s is not a directory", path, dir)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("sqlite: open %s: is a directory", path)
	}
	return nil
}

// createPrivate creates the database file 0600 (whatever the umask) before
// SQLite opens it, so that neither it nor the -wal and -shm files SQLite
// makes with the main file's mode are readable by others; existed says the
// file was there already. An existing file readable or writable by group
// or others is not changed (its owner may mean it, say for a backup user)
// but is warned about.
func createPrivate(path string) (existed bool) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		// The umask can only take permissions away; this makes sure.
		_ = f.Chmod(0o600)
		f.Close()
		return false
	case errors.Is(err, fs.ErrExist):
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			slog.Default().Warn("the database file is readable or writable by others; it holds raw webhook payloads: chmod 600 it (and its -wal and -shm files)",
				"path", path, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
		}
		return true
	default:
		// A directory we may not write, a read-only file system: SQLite
		// fails too, and its error (openError) says why.
		return fileExists(path)
	}
}

// removeCreated removes the file createPrivate created when the database
// could not be opened after all.
func removeCreated(path string, existed bool) {
	if !existed {
		if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
			os.Remove(path)
		}
	}
}

// SQLite primary result codes (sqlite3.h) that openError explains.
const (
	codeReadOnly = 8
	codeCantOpen = 14
	codeNotADB   = 26
)

// openError names the path and, where SQLite's own message is vague, the
// reason: "unable to open database file" does not say whether it was
// permissions, a read-only file system or something else.
func openError(path string, existed bool, err error) error {
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case codeNotADB:
			return fmt.Errorf("sqlite: open %s: not a SQLite database: %w", path, err)
		case codeReadOnly:
			return fmt.Errorf("sqlite: open %s: read-only (check permissions of the file and its directory): %w", path, err)
		case codeCantOpen:
			if cause := probe(path, existed); cause != nil {
				return fmt.Errorf("sqlite: open %s: %w (%v)", path, cause, err)
			}
		}
	}
	return fmt.Errorf("sqlite: open %s: %w", path, err)
}

// probe asks the OS to do what SQLite could not, for its error.
func probe(path string, existed bool) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		// The path is in the message already.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	f.Close()
	if !existed {
		os.Remove(path)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
