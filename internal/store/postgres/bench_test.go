package postgres_test

import (
	"testing"

	"github.com/labtrail/labtrail/internal/store/storetest"
)

func BenchmarkUpsert(b *testing.B) { storetest.BenchUpsert(b, open(b)) }

func BenchmarkList(b *testing.B) { storetest.BenchList(b, open(b)) }
