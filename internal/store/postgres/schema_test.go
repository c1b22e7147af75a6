package postgres_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
)

// Connect (what replicas use) never migrates: a fresh schema is refused
// with the way out; after Migrate it connects; a schema from a newer
// labtrail is refused by Connect and Open alike, and left as it was.
func TestConnectNeedsMigratedSchema(t *testing.T) {
	u := pgtest.SchemaURL(t)
	_, err := postgres.Connect(t.Context(), u)
	if !errors.Is(err, store.ErrSchemaOutdated) || !strings.Contains(err.Error(), "labtrail migrate") {
		t.Fatalf("Connect to an empty schema: %v", err)
	}
	applied, err := postgres.Migrate(t.Context(), u)
	if err != nil || len(applied) == 0 || applied[0].Version != 1 || applied[0].Name != "00001_init.sql" {
		t.Fatalf("Migrate: %+v %v", applied, err)
	}
	again, err := postgres.Migrate(t.Context(), u)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate applied %+v, %v", again, err)
	}
	s, err := postgres.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("Connect after Migrate: %v", err)
	}
	known, _ := s.SchemaVersion(t.Context())
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for name, open := range map[string]func() error{
		"Connect": func() error { s, err := postgres.Connect(t.Context(), u); closeIf(s); return err },
		"Open":    func() error { s, err := postgres.Open(t.Context(), u); closeIf(s); return err },
	} {
		err := open()
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "999") ||
			!strings.Contains(err.Error(), "up to "+strconv.FormatInt(known, 10)) {
			t.Errorf("%s on a newer schema: %v", name, err)
		}
	}
}

func closeIf(s *postgres.Store) {
	if s != nil {
		s.Close()
	}
}
