package store

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// ErrSchemaTooNew is matched (errors.Is) by a SchemaError for a database
// migrated by a newer labtrail than this one.
var ErrSchemaTooNew = errors.New("database schema is newer than this labtrail")

// ErrSchemaOutdated is matched by a SchemaError for a database that needs
// `labtrail migrate` before this labtrail can use it.
var ErrSchemaOutdated = errors.New("database schema needs migrating")

// SchemaError says a database's schema is not the one this build was made
// for. Part is what the version belongs to ("store" or "job queue").
type SchemaError struct {
	Part  string
	Have  int64 // the database's version; 0 for none at all
	Known int64 // the newest version this build has
}

func (e *SchemaError) Error() string {
	if e.Have > e.Known {
		return fmt.Sprintf("the %s schema is at version %d, newer than this labtrail knows (up to %d): "+
			"a newer labtrail migrated it; run that version (or newer), not this one", e.Part, e.Have, e.Known)
	}
	return fmt.Sprintf("the %s schema is at version %d, this labtrail needs version %d: "+
		"run `labtrail migrate` against this database first", e.Part, e.Have, e.Known)
}

// Is matches ErrSchemaTooNew or ErrSchemaOutdated.
func (e *SchemaError) Is(target error) bool {
	if e.Have > e.Known {
		return target == ErrSchemaTooNew
	}
	return target == ErrSchemaOutdated
}

// Migration is one migration a Migrate applied.
type Migration struct {
	Part    string // "store" or "job queue"
	Version int64
	Name    string
}

// LatestMigration is the highest version among the goose migrations in
// fsys (files named <version>_<name>.sql).
func LatestMigration(fsys fs.FS) (int64, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, n := range names {
		digits, _, ok := strings.Cut(n, "_")
		v, err := strconv.ParseInt(digits, 10, 64)
		if !ok || err != nil {
			return 0, fmt.Errorf("migration %s: name does not start with <version>_", n)
		}
		latest = max(latest, v)
	}
	if latest == 0 {
		return 0, errors.New("no migrations embedded")
	}
	return latest, nil
}
