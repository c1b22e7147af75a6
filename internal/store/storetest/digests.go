package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// The digests' send records (issue 16), held for every backend.
var digestTests = []struct {
	name string
	fn   func(t *testing.T, s store.Core)
}{
	{"DigestClaimOnce", testDigestClaimOnce},
	{"DigestClaimRace", testDigestClaimRace},
}

func testDigestClaimOnce(t *testing.T, s store.Core) {
	const key, dest, lease = "week:2025-03-10:UTC:all", "slack", 10 * time.Minute
	d, ok, err := s.ClaimDigest(ctx(t), key, dest, at(0), lease)
	if err != nil || !ok || d.Attempts != 1 || !d.ClaimedAt.Equal(at(0)) || !d.SentAt.IsZero() {
		t.Fatalf("first claim: %+v %v %v", d, ok, err)
	}
	// A second sender within the lease is refused; after it, the claim is
	// taken to belong to a dead sender and is taken over.
	if d, ok, err := s.ClaimDigest(ctx(t), key, dest, at(5), lease); err != nil || ok || d.Attempts != 1 {
		t.Fatalf("claim within the lease: %+v %v %v", d, ok, err)
	}
	if d, ok, err := s.ClaimDigest(ctx(t), key, dest, at(11), lease); err != nil || !ok || d.Attempts != 2 {
		t.Fatalf("claim after the lease: %+v %v %v", d, ok, err)
	}
	// A failure frees it at once and is kept.
	if err := s.FinishDigest(ctx(t), key, dest, at(12), "slack answered 500"); err != nil {
		t.Fatal(err)
	}
	sends, err := s.DigestSends(ctx(t), 0)
	if err != nil || len(sends) != 1 || sends[0].LastError != "slack answered 500" || !sends[0].ClaimedAt.IsZero() || !sends[0].SentAt.IsZero() {
		t.Fatalf("after a failure: %+v %v", sends, err)
	}
	if d, ok, err := s.ClaimDigest(ctx(t), key, dest, at(13), lease); err != nil || !ok || d.Attempts != 3 {
		t.Fatalf("claim after a failure: %+v %v %v", d, ok, err)
	}
	if err := s.FinishDigest(ctx(t), key, dest, at(14), ""); err != nil {
		t.Fatal(err)
	}
	// Sent: never claimed again, however late.
	d, ok, err = s.ClaimDigest(ctx(t), key, dest, at(60*24*30), lease)
	if err != nil || ok || !d.SentAt.Equal(at(14)) || d.LastError != "" || d.Attempts != 3 {
		t.Fatalf("claim of a sent digest: %+v %v %v", d, ok, err)
	}
	// Another destination and another period are their own records.
	if _, ok, err := s.ClaimDigest(ctx(t), key, "webhook", at(15), lease); err != nil || !ok {
		t.Fatalf("other destination: %v %v", ok, err)
	}
	if _, ok, err := s.ClaimDigest(ctx(t), "week:2025-03-17:UTC:all", dest, at(16), lease); err != nil || !ok {
		t.Fatalf("other period: %v %v", ok, err)
	}
	sends, err = s.DigestSends(ctx(t), 2)
	if err != nil || len(sends) != 2 || sends[0].Key != "week:2025-03-17:UTC:all" || sends[1].Destination != "webhook" {
		t.Fatalf("newest first, limited: %+v %v", sends, err)
	}
	if _, err := s.DigestSends(ctx(t), -1); err == nil {
		t.Error("a negative limit is accepted")
	}
}

// testDigestClaimRace: of many senders claiming one period at once,
// exactly one may send it.
func testDigestClaimRace(t *testing.T, s store.Core) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner int
	)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.ClaimDigest(ctx(t), "day:2025-03-14:UTC:all", "slack", at(0), time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winner++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if winner != 1 {
		t.Fatalf("%d senders claimed one digest", winner)
	}
}
