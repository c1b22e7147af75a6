package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// TokenPrefix starts every API token, so that a token found in a log or a
// repository is known for what it is.
const TokenPrefix = "lt_"

// ErrInvalidToken is why a token is refused: unknown, revoked, expired or
// not a token at all. Its message says which, never the token.
var ErrInvalidToken = errors.New("invalid token")

// NewToken returns a new token: the prefix and 256 random bits.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is what the store keeps of a token: SHA-256, which is right
// for a secret of 256 random bits (nothing to guess, so nothing to slow
// down).
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// Tokens makes and checks API tokens.
type Tokens struct {
	st  store.TokenStore
	now func() time.Time

	mu      sync.Mutex
	touched map[int64]time.Time // when last_used_at was last written
}

// NewTokens returns Tokens over st.
func NewTokens(st store.TokenStore) *Tokens {
	return &Tokens{st: st, now: time.Now, touched: map[int64]time.Time{}}
}

// Create makes a token named name with scope, expiring after ttl (0:
// never), and returns it: the only time it is ever seen.
func (t *Tokens) Create(ctx context.Context, name string, scope Scope, ttl time.Duration) (string, store.Token, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", store.Token{}, errors.New("a token needs a name of 1 to 100 characters")
	}
	if scope == ScopeNone {
		return "", store.Token{}, errors.New("a token needs a scope: read, deploy or admin")
	}
	if ttl < 0 {
		return "", store.Token{}, errors.New("a token cannot expire before it is made")
	}
	raw, err := NewToken()
	if err != nil {
		return "", store.Token{}, err
	}
	now := t.now().UTC()
	rec := store.Token{Name: name, Scope: scope.String(), Hash: HashToken(raw), CreatedAt: now}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl)
	}
	rec, err = t.st.CreateToken(ctx, rec)
	if errors.Is(err, store.ErrTokenExists) {
		return "", store.Token{}, fmt.Errorf("a token named %q exists: revoke it or choose another name", name)
	}
	return raw, rec, err
}

// Verify returns the principal of token raw, or an error wrapping
// ErrInvalidToken that says why it is refused.
func (t *Tokens) Verify(ctx context.Context, raw string) (*Principal, error) {
	if !strings.HasPrefix(raw, TokenPrefix) {
		return nil, fmt.Errorf("%w: not a labtrail token (they start with %s)", ErrInvalidToken, TokenPrefix)
	}
	h := HashToken(raw)
	rec, err := t.st.TokenByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown token", ErrInvalidToken)
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(rec.Hash, h) != 1 {
		return nil, fmt.Errorf("%w: unknown token", ErrInvalidToken)
	}
	now := t.now()
	switch {
	case !rec.RevokedAt.IsZero():
		return nil, fmt.Errorf("%w: token %q was revoked", ErrInvalidToken, rec.Name)
	case !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt):
		return nil, fmt.Errorf("%w: token %q expired at %s", ErrInvalidToken, rec.Name, rec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	scope, err := ParseScope(rec.Scope)
	if err != nil {
		return nil, fmt.Errorf("%w: token %q has %v", ErrInvalidToken, rec.Name, err)
	}
	t.touch(ctx, rec.ID, now)
	return &Principal{Kind: "token", Name: rec.Name, TokenID: rec.ID, Scope: scope}, nil
}

// touch records a token's use, at most once a minute per token: a busy
// CI job must not make every request a write.
func (t *Tokens) touch(ctx context.Context, id int64, now time.Time) {
	t.mu.Lock()
	last, ok := t.touched[id]
	due := !ok || now.Sub(last) >= time.Minute
	if due {
		t.touched[id] = now
	}
	t.mu.Unlock()
	if due {
		_ = t.st.TouchToken(ctx, id, now.UTC()) // best effort: a failed write refuses no request
	}
}
