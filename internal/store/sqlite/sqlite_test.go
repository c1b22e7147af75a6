package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "labtrail.db"))
	})
}

func event(i int) change.Event {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC).Add(time.Duration(i) * time.Second)
	return change.Event{
		ID:         change.MergeRequestID(1, int64(i)),
		Kind:       change.KindMergeRequest,
		ProjectID:  1,
		State:      "opened",
		UpdatedAt:  at,
		OccurredAt: at,
		Source:     change.SourcePoll,
		Attrs:      map[string]any{"iid": i},
	}
}

func migrationRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM goose_db_version`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "labtrail.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	e := event(1)
	if _, err := s.Upsert(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	applied := migrationRows(t, s.DB())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	if n := migrationRows(t, s.DB()); n != applied {
		t.Errorf("goose_db_version has %d rows after reopening, had %d: migrations ran again", n, applied)
	}
	got, _, err := s.Get(t.Context(), e.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if !got.UpdatedAt.Equal(e.UpdatedAt) {
		t.Errorf("updated_at %v, want %v", got.UpdatedAt, e.UpdatedAt)
	}
	r, err := s.Upsert(t.Context(), e)
	if err != nil || r.Unchanged != 1 {
		t.Errorf("re-upsert after reopen: %+v, %v; want unchanged", r, err)
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "labtrail.db"))
	// Several connections at once, so the pragmas are checked on more
	// than the one Open happened to use.
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := s.DB().Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		for _, p := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"busy_timeout", "10000"},
			{"synchronous", "1"},
			{"mmap_size", "1073741824"},
		} {
			var got string
			if err := c.QueryRowContext(t.Context(), "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != p.want {
				t.Errorf("conn %d: PRAGMA %s = %s, want %s", i, p.pragma, got, p.want)
			}
		}
	}
}

// The job queue opens its own pool with DSN; both must see each other's
// writes and wait for each other rather than fail.
func TestDSNSharesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd ?#% name.db")
	s := open(t, path)
	other, err := sql.Open("sqlite", sqlite.DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := s.Upsert(t.Context(), event(1)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := other.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("other pool sees %d events, %v", n, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the path given: %v", err)
	}

	// A write transaction held by the other pool makes Upsert wait, not fail.
	tx, err := other.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`CREATE TABLE queue (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Upsert(context.Background(), event(2))
		done <- err
	}()
	// Upsert holds a connection of its pool while SQLite's busy handler
	// waits for the lock: commit once it does.
	for deadline := time.Now().Add(10 * time.Second); s.DB().Stats().InUse == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Upsert never began")
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Upsert while another pool wrote: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := readOnlyDir(t)

	for _, c := range []struct {
		name, path string
		cause      string
	}{
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "labtrail.db"), "does not exist"},
		{"directory as file", dir, "is a directory"},
		{"not a database", notDB, "not a SQLite database"},
		{"read-only location", filepath.Join(readOnly, "labtrail.db"), ""},
		{"empty path", "", "no database path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := sqlite.Open(t.Context(), c.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", c.path)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), c.path) {
				t.Errorf("error %q does not name the path", err)
			}
			if !strings.Contains(err.Error(), c.cause) {
				t.Errorf("error %q does not say %q", err, c.cause)
			}
		})
	}
	if b, _ := os.ReadFile(notDB); !strings.HasPrefix(string(b), "this is not") {
		t.Errorf("Open changed the file that is not a database")
	}
}

// A database this process may read but not write must fail at Open, not at
// the first Upsert hours later.
func TestOpenReadOnlyFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// Permissions do not stop root (as CI runs): run this test again
		// in a copy of the test binary as the unprivileged user nobody.
		runAsNobody(t, "TestOpenReadOnlyFile")
		return
	}
	for _, dirToo := range []bool{false, true} {
		t.Run(fmt.Sprintf("directory read-only %v", dirToo), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "labtrail.db")
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := os.Chmod(path, 0o444); err != nil {
				t.Fatal(err)
			}
			if dirToo {
				if err := os.Chmod(dir, 0o555); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(dir, 0o755) })
			}
			s, err = sqlite.Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("Open of a read-only database succeeded")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "read-only") {
				t.Errorf("error %q does not name the path and say read-only", err)
			}
		})
	}
}

// readOnlyDir is a directory this process cannot create files in.
func readOnlyDir(t *testing.T) string {
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return dir
	}
	// Permissions do not stop root; sysfs refuses new files to everyone.
	if fi, err := os.Stat("/sys"); err == nil && fi.IsDir() {
		return "/sys"
	}
	t.Skip("running as root without /sys: no read-only location to test")
	return ""
}

// A write that fails part-way (here the database reaching its size limit,
// as on a full disk) leaves nothing of the call behind.
func TestUpsertFailureRollsBack(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "labtrail.db"))
	if _, err := s.Upsert(t.Context(), event(0)); err != nil {
		t.Fatal(err)
	}
	db := s.DB()
	// max_page_count is per connection: hold the pool to one.
	db.SetMaxOpenConns(1)
	var pages int
	if err := db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+2)); err != nil {
		t.Fatal(err)
	}
	var batch []change.Event
	for i := 1; i <= 500; i++ {
		e := event(i)
		e.Attrs["body"] = strings.Repeat("x", 2000)
		e.Transitions = []change.Transition{{State: "opened", At: e.OccurredAt}}
		batch = append(batch, e)
	}
	_, err := s.Upsert(t.Context(), batch...)
	if err == nil {
		t.Fatal("Upsert beyond max_page_count succeeded")
	}
	t.Logf("error: %v", err)
	if n, err := s.Count(t.Context(), ""); err != nil || n != 1 {
		t.Errorf("Count = %d, %v after failed Upsert; want 1", n, err)
	}
	var tl int
	if err := db.QueryRow(`SELECT COUNT(*) FROM timeline`).Scan(&tl); err != nil || tl != 1 {
		t.Errorf("timeline rows = %d, %v after failed Upsert; want 1", tl, err)
	}
	// Still usable once there is room again.
	if _, err := db.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Upsert(t.Context(), batch...); err != nil || r.Inserted != len(batch) {
		t.Errorf("Upsert after freeing space: %+v, %v", r, err)
	}
}

func TestRejectsUnstorableTimes(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "labtrail.db"))
	e := event(1)
	e.OccurredAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Upsert(t.Context(), e); err == nil {
		t.Error("Upsert of a time past 2262 succeeded; it cannot round-trip")
	}
}

// Several processes (serve, a sync, a reader) may open a new database at
// the same moment; only one may create its tables.
func TestConcurrentOpenOfNewFileMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		go func() {
			s, err := sqlite.Open(context.Background(), path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 6; i++ {
		if err := <-errs; err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
}

// runAsNobody runs one test of this binary as user nobody and fails if it
// fails (or is skipped there: it must run somewhere).
func runAsNobody(t *testing.T, name string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "labtrail-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "sqlite.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s as nobody: %v\n%s", name, err, out)
	}
}

func TestFactsRebuiltOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "labtrail.db")
	s := open(t, path)
	storetest.FactsRebuilt(t, s, func(stmt string) {
		if _, err := s.DB().Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}, func() store.Store {
		s.Close()
		return open(t, path)
	})
}
