package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/labtrail/labtrail/internal/store/storetest"
)

func BenchmarkUpsert(b *testing.B) {
	storetest.BenchUpsert(b, open(b, filepath.Join(b.TempDir(), "bench.db")))
}

func BenchmarkList(b *testing.B) {
	storetest.BenchList(b, open(b, filepath.Join(b.TempDir(), "bench.db")))
}
