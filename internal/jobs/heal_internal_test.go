package jobs

import (
	"context"
	"testing"
	"time"
)

// A burst of heal requests for one project inserts one sync while the one
// it queued is still ahead; a sync found already queued (a duplicate) is
// not taken to cover later requests, and each project is its own.
func TestHealerInsertsOncePerQueuedSync(t *testing.T) {
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		fresh   bool
		inserts int
	}{
		{"queued ahead covers the burst", time.Hour, true, 2},
		{"a duplicate is not remembered", time.Hour, false, 8},
		{"no delay: nothing is ahead", 0, true, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			heal := newHealer(tc.delay, func(_ context.Context, _ int64, _ string, at time.Time) (bool, error) {
				n++
				if d := time.Until(at); d > tc.delay || d < tc.delay-time.Minute {
					t.Errorf("scheduled %v from now, want %v", d, tc.delay)
				}
				return tc.fresh, nil
			})
			for range 4 {
				for _, p := range []int64{1, 2} {
					if err := heal(context.Background(), p, "g/p"); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n != tc.inserts {
				t.Fatalf("%d inserts, want %d", n, tc.inserts)
			}
		})
	}
}
