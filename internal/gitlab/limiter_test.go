package gitlab

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// stepClock is a Clock that only moves when slept on: Sleep advances it by
// the wait asked and returns at once. onSleep, when set, runs first (a
// test cancels its context there, as if the caller gave up mid-wait).
type stepClock struct {
	mu      sync.Mutex
	now     time.Time
	sleeps  int
	onSleep func()
}

func newStepClock() *stepClock {
	return &stepClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.onSleep != nil {
		c.onSleep()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps++
	c.now = c.now.Add(max(d, 0))
	return nil
}

// checkWindows fails when more than l.perWindow of the admissions at (in
// time order) fall in any 60 seconds, or more than the pace allows in any
// second: a bucket of b refilled one per T lets n through in D only when
// (n-b)·T < D.
func checkWindows(t *testing.T, name string, l *limiter, at []time.Time) {
	t.Helper()
	for i, j, k := 0, 0, 0; i < len(at); i++ {
		if i > 0 && at[i].Before(at[i-1]) {
			t.Fatalf("%s: admissions out of order at %d", name, i)
		}
		for j < len(at) && at[j].Sub(at[i]) < limitWindow {
			j++
		}
		if n := j - i; n > l.perWindow {
			t.Fatalf("%s: %d admissions in the 60 s from admission %d, limit %d", name, n, i, l.perWindow)
		}
		for k < len(at) && at[k].Sub(at[i]) < time.Second {
			k++
		}
		if n := k - i; time.Duration(n-l.burst)*l.interval >= time.Second {
			t.Fatalf("%s: %d admissions in the second from admission %d (burst %d, one per %s)", name, n, i, l.burst, l.interval)
		}
	}
}

// Four callers asking at random — bursts, steady streams and long pauses —
// for 5,000 requests: no 60 seconds ever see more than the budget, and no
// second more than the pace allows. The callers are simulated on a virtual
// timeline, each asking again after the wait take returned, as
// limiter.wait does.
func TestLimiterNeverExceedsTheBudget(t *testing.T) {
	for _, rpm := range []int{1, 2, 7, 60, 61, 600, 2000} {
		l := newLimiter(rpm)
		rng := rand.New(rand.NewPCG(uint64(rpm), 42))
		start := newStepClock().Now()
		next := make([]time.Time, 4) // when each caller asks next
		for i := range next {
			next[i] = start.Add(time.Duration(rng.Int64N(int64(time.Second))))
		}
		var at []time.Time
		for len(at) < 5000 {
			c := 0
			for i := range next {
				if next[i].Before(next[c]) {
					c = i
				}
			}
			now := next[c]
			if d := l.take(now); d > 0 {
				next[c] = now.Add(d)
				continue
			}
			at = append(at, now)
			var think time.Duration
			switch r := rng.IntN(100); {
			case r < 60: // at once: a burst
			case r < 95:
				think = time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
			default:
				think = time.Duration(rng.Int64N(int64(3 * time.Minute)))
			}
			next[c] = now.Add(think)
		}
		checkWindows(t, "rpm "+strconv.Itoa(rpm), l, at)
	}
}

// A caller that never pauses gets the whole budget: the same number in
// every minute, exactly what the limit allows.
func TestLimiterUsesTheWholeBudget(t *testing.T) {
	for _, rpm := range []int{1, 60, 600} {
		l := newLimiter(rpm)
		start := newStepClock().Now()
		now := start
		var at []time.Time
		for {
			if d := l.take(now); d > 0 {
				now = now.Add(d)
				continue
			}
			if !now.Before(start.Add(5 * time.Minute)) {
				break
			}
			at = append(at, now)
		}
		checkWindows(t, "saturated", l, at)
		if len(at) != 5*l.perWindow {
			t.Errorf("rpm %d: %d admitted in five minutes, want %d", rpm, len(at), 5*l.perWindow)
		}
	}
}

// A job smaller than a minute's budget is paced, not spread over the
// minute: at 600 a minute, 500 requests go as a burst of 10 and then one
// every 25 ms, the last 12.275 s after the first.
func TestLimiterShortJobIsPacedNotSpread(t *testing.T) {
	l := newLimiter(600)
	clock := newStepClock()
	start := clock.Now()
	for i := range 500 {
		if err := l.wait(context.Background(), clock); err != nil {
			t.Fatal(err)
		}
		want := start.Add(time.Duration(max(0, i-9)) * 25 * time.Millisecond)
		if got := clock.Now(); !got.Equal(want) {
			t.Fatalf("request %d admitted at +%s, want +%s", i, got.Sub(start), want.Sub(start))
		}
	}
	if clock.sleeps != 490 {
		t.Errorf("%d waits, want one per request after the burst (490)", clock.sleeps)
	}
}

// A wait that ends with its context takes nothing: the next caller gets
// the place it would have had.
func TestLimiterCancelledWaitTakesNothing(t *testing.T) {
	t.Run("window", func(t *testing.T) {
		l := newLimiter(1)
		clock := newStepClock()
		start := clock.Now()
		if d := l.take(start); d != 0 {
			t.Fatalf("first request waits %s", d)
		}
		ctx, cancel := context.WithCancel(context.Background())
		clock.onSleep = cancel // gives up while waiting
		if err := l.wait(ctx, clock); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
		// Nothing was admitted: a minute after the first, the next goes at
		// once, and the one after waits a whole minute.
		if d := l.take(start.Add(time.Minute)); d != 0 {
			t.Errorf("a minute later the next waits %s: the cancelled wait took a place", d)
		}
		if d := l.take(start.Add(time.Minute)); d != time.Minute {
			t.Errorf("then %s, want 1m", d)
		}
	})
	t.Run("pace", func(t *testing.T) {
		l := newLimiter(600)
		clock := newStepClock()
		start := clock.Now()
		for range 10 {
			if d := l.take(start); d != 0 {
				t.Fatalf("burst waits %s", d)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		clock.onSleep = cancel
		if err := l.wait(ctx, clock); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
		if d := l.take(start.Add(25 * time.Millisecond)); d != 0 {
			t.Errorf("25ms later the next waits %s", d)
		}
		if d := l.take(start.Add(25 * time.Millisecond)); d != 25*time.Millisecond {
			t.Errorf("then %s, want 25ms", d)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		l := newLimiter(1)
		clock := newStepClock()
		start := clock.Now()
		l.take(start)
		// A minute to wait, 30 s to live: it fails at once, without sleeping.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		clock.onSleep = func() { t.Error("slept although the wait outlasts the deadline") }
		if err := l.wait(ctx, clock); !errors.Is(err, errLimiterDeadline) {
			t.Fatalf("wait past a 30s deadline: %v", err)
		}
		if d := l.take(start.Add(time.Minute)); d != 0 {
			t.Errorf("the failed wait took a place: the next waits %s", d)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		l := newLimiter(1)
		clock := newStepClock()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.wait(ctx, clock); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v", err)
		}
		if d := l.take(clock.Now()); d != 0 {
			t.Errorf("a cancelled caller took the only place: %s", d)
		}
	})
}

// The figures for small and odd limits; below 1 is the default, as New
// makes it.
func TestLimiterFigures(t *testing.T) {
	for _, tc := range []struct {
		rpm, perWindow, burst int
		interval              time.Duration
	}{
		{1, 1, 1, 15 * time.Second},
		{2, 1, 1, 7500 * time.Millisecond},
		{50, 49, 1, 300 * time.Millisecond},
		{59, 57, 1, 254237289}, // 15s/59, rounded up
		{60, 58, 1, 250 * time.Millisecond},
		{120, 117, 2, 125 * time.Millisecond},
		{600, 588, 10, 25 * time.Millisecond},
		{2000, 1960, 33, 7500 * time.Microsecond},
		{0, 588, 10, 25 * time.Millisecond},
		{-3, 588, 10, 25 * time.Millisecond},
	} {
		l := newLimiter(tc.rpm)
		if l.perWindow != tc.perWindow || l.burst != tc.burst || l.interval != tc.interval {
			t.Errorf("rpm %d: %d a minute, burst %d, one per %s; want %d, %d, %s",
				tc.rpm, l.perWindow, l.burst, l.interval, tc.perWindow, tc.burst, tc.interval)
		}
	}
	// One a minute: the second waits exactly the minute, not a moment
	// less, and the pace's 15 s never lets a second one into it.
	l := newLimiter(1)
	start := newStepClock().Now()
	if l.take(start) != 0 {
		t.Fatal("first request waits")
	}
	for _, after := range []time.Duration{0, 15 * time.Second, time.Minute - 1} {
		if d := l.take(start.Add(after)); d != time.Minute-after {
			t.Errorf("at +%s: waits %s, want %s", after, d, time.Minute-after)
		}
	}
	if l.take(start.Add(time.Minute)) != 0 {
		t.Error("not admitted a minute later")
	}
}

// Callers in goroutines share one limiter (run with -race): every wait
// ends admitted, and what the limiter holds never exceeds the budget.
func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter(120) // 117 a minute, bursts of 2, one per 125ms
	clock := newStepClock()
	start := clock.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				if err := l.wait(context.Background(), clock); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.mu.Lock()
	held := append([]time.Duration(nil), l.admitted[l.head:]...)
	l.mu.Unlock()
	if len(held) > l.perWindow {
		t.Errorf("%d held in the window, limit %d", len(held), l.perWindow)
	}
	at := make([]time.Time, len(held))
	for i, d := range held {
		at[i] = l.origin.Add(d)
	}
	checkWindows(t, "concurrent", l, at)
	// 480 requests at 117 a minute cannot end before four minutes have
	// begun, however the sleeps moved the clock.
	if got := clock.Now().Sub(start); got < 4*time.Minute {
		t.Errorf("480 requests admitted within %s", got)
	}
}

// TestLimiterSaysWhenTheBudgetHeld: waits for the pace alone do not count
// as held by the budget; a request that finds the minute's budget spent
// does, from then on.
func TestLimiterSaysWhenTheBudgetHeld(t *testing.T) {
	l := newLimiter(600) // 588 a minute
	clock := newStepClock()
	start := clock.Now()
	for range 588 {
		if err := l.wait(context.Background(), clock); err != nil {
			t.Fatal(err)
		}
	}
	if clock.sleeps == 0 {
		t.Fatal("the pace never made a request wait")
	}
	if l.fullSince(start.Add(-time.Second)) {
		t.Error("held by the budget after waits for the pace alone")
	}
	before := clock.Now()
	if err := l.wait(context.Background(), clock); err != nil {
		t.Fatal(err)
	}
	if got := clock.Now().Sub(start); got < time.Minute {
		t.Errorf("request 589 admitted at +%s, within the first minute", got)
	}
	if !l.fullSince(before.Add(-time.Nanosecond)) {
		t.Error("request 589 waited for the budget, yet the limiter does not say so")
	}
	if l.fullSince(clock.Now()) {
		t.Error("held by the budget after the last refusal")
	}
}
