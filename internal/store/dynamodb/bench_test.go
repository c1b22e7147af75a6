package dynamodb_test

import (
	"testing"

	"github.com/labtrail/labtrail/internal/store/storetest"
)

func BenchmarkUpsert(b *testing.B) { storetest.BenchUpsert(b, open(b)) }

// BenchmarkList lists from 3,000 events: filling dynalite with the 50,000
// of the SQL backends' benchmark takes minutes.
func BenchmarkList(b *testing.B) { storetest.BenchListOf(b, open(b), 3000) }
