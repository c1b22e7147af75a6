package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// SessionCookie names the dashboard's session cookie.
const SessionCookie = "labtrail_session"

// DefaultSessionTTL is how long a dashboard session lasts.
const DefaultSessionTTL = 12 * time.Hour

// Sessions signs people in to the dashboard with an API token they paste
// once, and keeps them signed in with a session cookie whose id only the
// browser holds (the store keeps its SHA-256).
type Sessions struct {
	st     store.SessionStore
	tokens *Tokens
	// TTL is a session's life; Secure marks the cookie Secure (off only
	// when labtrail listens on loopback, where there is no TLS).
	TTL    time.Duration
	Secure bool
	now    func() time.Time
}

// NewSessions returns Sessions over st, checking tokens with tokens.
func NewSessions(st store.SessionStore, tokens *Tokens, secure bool) *Sessions {
	return &Sessions{st: st, tokens: tokens, TTL: DefaultSessionTTL, Secure: secure, now: time.Now}
}

func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// SignIn checks token raw and, if it is good, starts a session and sets
// its cookie on w. Its error wraps ErrInvalidToken for a bad token.
func (s *Sessions) SignIn(ctx context.Context, w http.ResponseWriter, raw string) (*Principal, error) {
	p, err := s.tokens.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	id, err := random(32)
	if err != nil {
		return nil, err
	}
	csrf, err := random(32)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	exp := now.Add(s.TTL)
	if err := s.st.CreateSession(ctx, store.Session{IDHash: HashToken(id), TokenID: p.TokenID, Name: p.Name,
		Scope: p.Scope.String(), CSRF: csrf, CreatedAt: now, ExpiresAt: exp}); err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", Expires: exp, MaxAge: int(s.TTL / time.Second),
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
	p.Kind, p.CSRF = "session", csrf
	return p, nil
}

// SignOut ends r's session, if any, and clears its cookie.
func (s *Sessions) SignOut(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil
	}
	return s.st.DeleteSession(ctx, HashToken(c.Value), s.now().UTC())
}

// Principal is r's session's principal: nil, nil without a session
// cookie; an error when the session is unknown or over (expired, or its
// token revoked or expired since).
func (s *Sessions) Principal(r *http.Request) (*Principal, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	se, err := s.st.SessionByHash(r.Context(), HashToken(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("your session is over: sign in again")
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(se.ExpiresAt) {
		return nil, errors.New("your session has expired: sign in again")
	}
	tok, err := s.st.TokenByID(r.Context(), se.TokenID)
	if err != nil || !tok.RevokedAt.IsZero() || (!tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt)) {
		return nil, fmt.Errorf("the token %q this session was signed in with is revoked or expired: sign in again", se.Name)
	}
	scope, err := ParseScope(se.Scope)
	if err != nil {
		return nil, err
	}
	return &Principal{Kind: "session", Name: se.Name, TokenID: se.TokenID, Scope: scope, CSRF: se.CSRF}, nil
}

// CheckCSRF reports whether form token got is p's session's.
func CheckCSRF(p *Principal, got string) bool {
	return p != nil && p.CSRF != "" && subtle.ConstantTimeCompare([]byte(p.CSRF), []byte(got)) == 1
}
