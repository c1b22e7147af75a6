package store

import (
	"context"
	"time"
)

// DigestSend is the record of one digest, for one period and one
// destination: written before it is sent, marked sent after the
// destination accepted it.
type DigestSend struct {
	// Key names the period and what it covers (e.g.
	// "week:2026-11-30:UTC:all"); Destination where it goes ("slack",
	// "webhook").
	Key         string `json:"key"`
	Destination string `json:"destination"`
	// ClaimedAt is when a sender took it; zero when no one is sending it.
	ClaimedAt time.Time `json:"claimed_at"`
	Attempts  int       `json:"attempts"`
	// SentAt is when the destination accepted it; zero until then.
	SentAt time.Time `json:"sent_at"`
	// LastError is why the last attempt failed; empty once sent.
	LastError string    `json:"last_error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DigestStore keeps which digests were sent, so that each period goes to
// each destination once across restarts and replicas.
type DigestStore interface {
	// ClaimDigest records that key is about to be sent to destination
	// and says whether the caller may send it: not if it was sent, nor
	// while another sender's claim is younger than lease. The returned
	// record is the stored one after the claim.
	ClaimDigest(ctx context.Context, key, destination string, now time.Time, lease time.Duration) (DigestSend, bool, error)
	// FinishDigest ends a claim: sent at at when sendErr is empty, else
	// failed with sendErr (free to be claimed again).
	FinishDigest(ctx context.Context, key, destination string, at time.Time, sendErr string) error
	// DigestSends lists the newest records first, at most limit (1..
	// MaxLimit; 0 means DefaultLimit).
	DigestSends(ctx context.Context, limit int) ([]DigestSend, error)
}

const digestColumns = `period_key, destination, claimed_at, attempts, sent_at, last_error, updated_at`

func (s SQL[T]) scanDigest(r Row) (DigestSend, error) {
	var (
		d                      DigestSend
		claimed, sent, updated T
	)
	err := r.Scan(&d.Key, &d.Destination, &claimed, &d.Attempts, &sent, &d.LastError, &updated)
	d.ClaimedAt, d.SentAt, d.UpdatedAt = s.Scan.From(claimed), s.Scan.From(sent), s.Scan.From(updated)
	return d, err
}

// ClaimDigest implements DigestStore. Each step is one statement, atomic
// on its own: of two senders inserting the same record one inserts it, and
// of two taking over a failed or stale one, one updates it.
func (s SQL[T]) ClaimDigest(ctx context.Context, key, destination string, now time.Time, lease time.Duration) (DigestSend, bool, error) {
	if err := s.check([]string{"now"}, now); err != nil {
		return DigestSend{}, false, s.errorf("claim digest: %w", err)
	}
	tm, p := s.Dialect.Time, s.Dialect.Param
	n, err := s.Exec(ctx, `INSERT INTO digest_sends (period_key, destination, claimed_at, attempts, updated_at) VALUES (`+
		s.Dialect.Params(5)+`) ON CONFLICT (period_key, destination) DO NOTHING`,
		[]any{key, destination, tm(now), 1, tm(now)})
	if err != nil {
		return DigestSend{}, false, s.errorf("claim digest: %w", err)
	}
	if n == 0 {
		// Taken over only when unsent and not claimed within lease (a
		// failed attempt clears its claim).
		n, err = s.Exec(ctx, `UPDATE digest_sends SET claimed_at = `+p(1)+`, attempts = attempts + 1, updated_at = `+p(1)+
			` WHERE period_key = `+p(2)+` AND destination = `+p(3)+` AND sent_at = `+p(4)+` AND claimed_at <= `+p(5),
			[]any{tm(now), key, destination, tm(time.Time{}), tm(now.Add(-lease))})
		if err != nil {
			return DigestSend{}, false, s.errorf("claim digest: %w", err)
		}
	}
	got, err := rowsOf(ctx, s.Query, `SELECT `+digestColumns+` FROM digest_sends WHERE period_key = `+p(1)+` AND destination = `+p(2),
		[]any{key, destination}, s.scanDigest)
	if err != nil {
		return DigestSend{}, false, s.errorf("claim digest: read back: %w", err)
	}
	if len(got) == 0 {
		// Only a concurrent delete of the row gets here.
		return DigestSend{}, false, s.errorf("claim digest %s for %s: the claimed row is gone", key, destination)
	}
	return got[0], n == 1, nil
}

// FinishDigest implements DigestStore.
func (s SQL[T]) FinishDigest(ctx context.Context, key, destination string, at time.Time, sendErr string) error {
	if err := s.check([]string{"at"}, at); err != nil {
		return s.errorf("finish digest: %w", err)
	}
	tm, p := s.Dialect.Time, s.Dialect.Param
	set := `sent_at = ` + p(1) + `, last_error = ''`
	args := []any{tm(at), key, destination, tm(time.Time{})}
	if sendErr != "" {
		set = `last_error = ` + p(5)
		args = append(args, sendErr)
	}
	if _, err := s.Exec(ctx, `UPDATE digest_sends SET `+set+`, claimed_at = `+p(4)+`, updated_at = `+p(1)+
		` WHERE period_key = `+p(2)+` AND destination = `+p(3), args); err != nil {
		return s.errorf("finish digest: %w", err)
	}
	return nil
}

// DigestSends implements DigestStore.
func (s SQL[T]) DigestSends(ctx context.Context, limit int) ([]DigestSend, error) {
	n, err := PageLimit(limit)
	if err != nil {
		return nil, s.errorf("digest sends: %w", err)
	}
	out, err := rowsOf(ctx, s.Query, `SELECT `+digestColumns+` FROM digest_sends ORDER BY updated_at DESC, period_key DESC, destination LIMIT `+s.Dialect.Param(1),
		[]any{n}, s.scanDigest)
	if err != nil {
		return nil, s.errorf("digest sends: %w", err)
	}
	return out, nil
}
