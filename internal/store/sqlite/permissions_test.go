package sqlite_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// TestNewFilesArePrivate: the database holds raw webhook payloads, so a
// file Open creates is 0600 whatever the umask, and so are the -wal and
// -shm files SQLite makes beside it once it is written.
func TestNewFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask, which leaves 0644
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "labtrail.db")
	s := open(t, path)
	if _, _, err := s.PutDelivery(t.Context(), store.Delivery{IdempotencyKey: "k", EventType: "Push Hook",
		Body: []byte(`{"secret":"payload"}`), ReceivedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", filepath.Base(p), perm)
		}
	}
}

// TestWideExistingFileIsWarnedAbout: a database file someone made readable
// by others is opened and left as it is, with a warning naming it.
func TestWideExistingFileIsWarnedAbout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "labtrail.db")
	open(t, path).Close()
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	defer slog.SetDefault(prev)
	open(t, path)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %#o; the owner's choice is kept", fi.Mode().Perm())
	}
	if out := logged.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, path) || !strings.Contains(out, "chmod 600") {
		t.Errorf("no warning naming the file: %q", out)
	}

	// A private file opens without a word.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	logged.Reset()
	open(t, path)
	if logged.Len() != 0 {
		t.Errorf("warning for a 0600 file: %q", logged.String())
	}
}
