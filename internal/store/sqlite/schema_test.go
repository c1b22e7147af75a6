package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// A new file is migrated and Migrate says what it applied; a file from a
// newer labtrail is refused, naming both versions, and not written.
func TestMigrateAndRefuseNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	applied, err := sqlite.Migrate(ctx, path)
	if err != nil || len(applied) < 3 || applied[0].Name != "00001_init.sql" || applied[0].Part != "store" {
		t.Fatalf("Migrate of a new file: %+v %v", applied, err)
	}
	if again, err := sqlite.Migrate(ctx, path); err != nil || len(again) != 0 {
		t.Fatalf("second Migrate: %+v %v", again, err)
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	known, err := s.SchemaVersion(ctx)
	if err != nil || known != applied[len(applied)-1].Version {
		t.Fatalf("SchemaVersion = %d, %v", known, err)
	}
	if _, err := s.DB().Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, 1)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	_, err = sqlite.Open(ctx, path)
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "999") || !strings.Contains(err.Error(), "up to "+strconv.FormatInt(known, 10)) {
		t.Fatalf("Open of a newer schema: %v", err)
	}
	var se *store.SchemaError
	if !errors.As(err, &se) || se.Have != 999 || se.Known != known {
		t.Errorf("error %v is not a SchemaError{999, %d}", err, known)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("refusing the newer schema wrote to the file")
	}
}
