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
	oauth  *GitLabOAuth // NewGitLabOAuth's, when people may sign in with GitLab
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
	se := store.Session{Kind: "token", TokenID: p.TokenID, Name: p.Name, Scope: p.Scope.String()}
	_, sp, err := s.start(ctx, w, se)
	if err != nil {
		return nil, err
	}
	p.Kind, p.CSRF = sp.Kind, sp.CSRF
	return p, nil
}

// start stores session se with a new id and form token, sets its cookie
// on w, and returns the id and the session's principal.
func (s *Sessions) start(ctx context.Context, w http.ResponseWriter, se store.Session) (string, *Principal, error) {
	id, err := random(32)
	if err != nil {
		return "", nil, err
	}
	if se.CSRF, err = random(32); err != nil {
		return "", nil, err
	}
	now := s.now().UTC()
	se.IDHash, se.CreatedAt, se.ExpiresAt = HashToken(id), now, now.Add(s.TTL)
	if err := s.st.CreateSession(ctx, se); err != nil {
		return "", nil, err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", Expires: se.ExpiresAt, MaxAge: int(s.TTL / time.Second),
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
	p, err := sessionPrincipal(se)
	return id, p, err
}

// sessionPrincipal is who a session's requests come from.
func sessionPrincipal(se store.Session) (*Principal, error) {
	scope, err := ParseScope(se.Scope)
	if err != nil {
		return nil, err
	}
	p := &Principal{Kind: "session", Name: se.Name, TokenID: se.TokenID, Scope: scope, CSRF: se.CSRF}
	if se.Kind == "oauth" {
		p.Name = "gitlab:" + se.Name
		if se.Projects != nil {
			p.Projects = make(map[int64]bool, len(se.Projects))
			for _, id := range se.Projects {
				p.Projects[id] = true
			}
		}
	}
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
	if s.oauth != nil {
		s.oauth.forget(HashToken(c.Value))
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
	if se.Kind == "oauth" {
		if s.oauth == nil {
			return nil, errors.New("signing in with GitLab is off here now: sign in again")
		}
		if !now.Before(se.ProjectsUntil) {
			// The project list is due: read it again with the user's token.
			if se, err = s.oauth.renew(r.Context(), se.IDHash, se); err != nil {
				return nil, err
			}
		}
		return sessionPrincipal(se)
	}
	tok, err := s.st.TokenByID(r.Context(), se.TokenID)
	if err != nil || !tok.RevokedAt.IsZero() || (!tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt)) {
		return nil, fmt.Errorf("the token %q this session was signed in with is revoked or expired: sign in again", se.Name)
	}
	return sessionPrincipal(se)
}

// CheckCSRF reports whether form token got is p's session's.
func CheckCSRF(p *Principal, got string) bool {
	return p != nil && p.CSRF != "" && subtle.ConstantTimeCompare([]byte(p.CSRF), []byte(got)) == 1
}
