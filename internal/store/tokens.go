package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Token is an API token as the store keeps it: never the token itself,
// only its SHA-256.
type Token struct {
	ID         int64     `json:"id"`
	Name       string    `json:"name"`
	Scope      string    `json:"scope"` // read, deploy or admin
	Hash       []byte    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"` // zero: never used
	ExpiresAt  time.Time `json:"expires_at"`   // zero: never expires
	RevokedAt  time.Time `json:"revoked_at"`   // zero: not revoked
}

// ErrTokenExists is CreateToken's error for a name already taken.
var ErrTokenExists = errors.New("a token of that name exists")

// TokenStore keeps the API tokens and the admin audit trail.
type TokenStore interface {
	AdminAuditor
	// CreateToken stores t (its Hash set) and returns it with its id.
	CreateToken(ctx context.Context, t Token) (Token, error)
	// Tokens lists every token, revoked ones too, oldest first.
	Tokens(ctx context.Context) ([]Token, error)
	// TokenByHash returns the token whose hash is h (ErrNotFound when
	// none).
	TokenByHash(ctx context.Context, h []byte) (Token, error)
	// RevokeToken revokes the token named, or numbered, ref, at at
	// (ErrNotFound when none).
	RevokeToken(ctx context.Context, ref string, at time.Time) (Token, error)
	// TouchToken records that token id was used at at.
	TouchToken(ctx context.Context, id int64, at time.Time) error
	// AdminActions lists the admin audit trail, newest first: at most
	// limit entries older than entry before (0: from the newest).
	AdminActions(ctx context.Context, before int64, limit int) ([]AdminAction, error)
}

const tokenColumns = `id, name, scope, hash, created_at, last_used_at, expires_at, revoked_at`

func (s SQL[T]) scanToken(r Row) (Token, error) {
	var (
		t                         Token
		created, used, exp, revok T
	)
	err := r.Scan(&t.ID, &t.Name, &t.Scope, &t.Hash, &created, &used, &exp, &revok)
	t.CreatedAt, t.LastUsedAt, t.ExpiresAt, t.RevokedAt = s.Scan.From(created), s.Scan.From(used), s.Scan.From(exp), s.Scan.From(revok)
	return t, err
}

// CreateToken implements TokenStore.
func (s SQL[T]) CreateToken(ctx context.Context, t Token) (Token, error) {
	if err := s.check([]string{"created_at", "expires_at"}, t.CreatedAt, t.ExpiresAt); err != nil {
		return Token{}, s.errorf("create token: %w", err)
	}
	if have, err := s.tokenWhere(ctx, "name = ?", t.Name); err == nil && len(have) > 0 {
		return Token{}, ErrTokenExists
	}
	tm := s.Dialect.Time
	if _, err := s.Exec(ctx, `INSERT INTO api_tokens (name, scope, hash, created_at, expires_at) VALUES (`+s.Dialect.Params(5)+`)`,
		[]any{t.Name, t.Scope, t.Hash, tm(t.CreatedAt), tm(t.ExpiresAt)}); err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unique") {
			return Token{}, ErrTokenExists
		}
		return Token{}, s.errorf("create token: %w", err)
	}
	got, err := s.tokenWhere(ctx, "name = ?", t.Name)
	if err != nil || len(got) == 0 {
		return Token{}, s.errorf("create token: read back: %v", err)
	}
	return got[0], nil
}

func (s SQL[T]) tokenWhere(ctx context.Context, cond string, args ...any) ([]Token, error) {
	q := s.Dialect.Query()
	if cond != "" {
		q.Where(cond, args...)
	}
	return rowsOf(ctx, s.Query, `SELECT `+tokenColumns+` FROM api_tokens`+q.WhereSQL()+` ORDER BY id`, q.Args(), s.scanToken)
}

// Tokens implements TokenStore.
func (s SQL[T]) Tokens(ctx context.Context) ([]Token, error) {
	ts, err := s.tokenWhere(ctx, "")
	if err != nil {
		return nil, s.errorf("tokens: %w", err)
	}
	return ts, nil
}

// TokenByHash implements TokenStore.
func (s SQL[T]) TokenByHash(ctx context.Context, h []byte) (Token, error) {
	ts, err := s.tokenWhere(ctx, "hash = ?", h)
	switch {
	case err != nil:
		return Token{}, s.errorf("token: %w", err)
	case len(ts) == 0:
		return Token{}, ErrNotFound
	}
	return ts[0], nil
}

// RevokeToken implements TokenStore. A name is looked for first, then,
// when ref is a number, the token of that id.
func (s SQL[T]) RevokeToken(ctx context.Context, ref string, at time.Time) (Token, error) {
	ts, err := s.tokenWhere(ctx, "name = ?", ref)
	if id, perr := strconv.ParseInt(ref, 10, 64); err == nil && len(ts) == 0 && perr == nil {
		ts, err = s.tokenWhere(ctx, "id = ?", id)
	}
	if err != nil {
		return Token{}, s.errorf("revoke token: %w", err)
	}
	return s.revoke(ctx, ts, at)
}

func (s SQL[T]) revoke(ctx context.Context, ts []Token, at time.Time) (Token, error) {
	if len(ts) == 0 {
		return Token{}, ErrNotFound
	}
	t := ts[0]
	if !t.RevokedAt.IsZero() {
		return t, nil
	}
	if _, err := s.Exec(ctx, `UPDATE api_tokens SET revoked_at = `+s.Dialect.Param(1)+` WHERE id = `+s.Dialect.Param(2),
		[]any{s.Dialect.Time(at), t.ID}); err != nil {
		return Token{}, s.errorf("revoke token: %w", err)
	}
	t.RevokedAt = at
	return t, nil
}

// TouchToken implements TokenStore.
func (s SQL[T]) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.Exec(ctx, `UPDATE api_tokens SET last_used_at = `+s.Dialect.Param(1)+` WHERE id = `+s.Dialect.Param(2),
		[]any{s.Dialect.Time(at), id}); err != nil {
		return s.errorf("touch token: %w", err)
	}
	return nil
}

// AppendAdminAction implements AdminAuditor.
func (s SQL[T]) AppendAdminAction(ctx context.Context, a AdminAction) error {
	if err := s.check([]string{"time"}, a.Time); err != nil {
		return s.errorf("admin audit: %w", err)
	}
	if _, err := s.Exec(ctx, `INSERT INTO admin_audit (at, actor, action, target, detail, remote, ok) VALUES (`+s.Dialect.Params(7)+`)`,
		[]any{s.Dialect.Time(a.Time), a.Actor, a.Action, a.Target, a.Detail, a.Remote, a.OK}); err != nil {
		return s.errorf("admin audit: %w", err)
	}
	return nil
}

// AdminActions implements TokenStore.
func (s SQL[T]) AdminActions(ctx context.Context, before int64, limit int) ([]AdminAction, error) {
	q := s.Dialect.Query()
	if before > 0 {
		q.Where("id < ?", before)
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	out, err := rowsOf(ctx, s.Query, `SELECT id, at, actor, action, target, detail, remote, ok FROM admin_audit`+q.WhereSQL()+
		` ORDER BY id DESC LIMIT `+strconv.Itoa(limit), q.Args(), func(r Row) (AdminAction, error) {
		var (
			a  AdminAction
			at T
		)
		err := r.Scan(&a.ID, &at, &a.Actor, &a.Action, &a.Target, &a.Detail, &a.Remote, &a.OK)
		a.Time = s.Scan.From(at)
		return a, err
	})
	if err != nil {
		return nil, s.errorf("admin audit: %w", err)
	}
	return out, nil
}

// Session is a dashboard session as the store keeps it: the SHA-256 of
// the id its cookie holds, never the id.
type Session struct {
	IDHash    []byte
	TokenID   int64
	Name      string
	Scope     string
	CSRF      string // the form token its pages carry
	CreatedAt time.Time
	ExpiresAt time.Time
	// Kind is how the session was signed in: "token" (an API token,
	// TokenID) or "oauth" (GitLab: UserID, and Name the username).
	Kind   string
	UserID int64
	// Projects are the ids of the projects the session may see; nil is
	// every project, empty none. ProjectsUntil is when they are to be read
	// again (zero: never).
	Projects      []int64
	ProjectsUntil time.Time
	// OAuthToken is a GitLab sign-in's OAuth token, sealed (auth's
	// Keyring); zero when no secret key is configured.
	OAuthToken Sealed
}

// SessionStore keeps dashboard sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s Session) error
	// SessionByHash returns the session whose id hashes to h
	// (ErrNotFound when none).
	SessionByHash(ctx context.Context, h []byte) (Session, error)
	// DeleteSession ends the session whose id hashes to h, and every
	// session expired before now.
	DeleteSession(ctx context.Context, h []byte, now time.Time) error
	// SetSessionProjects replaces the projects the session whose id
	// hashes to h may see, read again until until (ErrNotFound when no
	// such session).
	SetSessionProjects(ctx context.Context, h []byte, projects []int64, until time.Time) error
	// TokenByID returns the token of id (ErrNotFound when none).
	TokenByID(ctx context.Context, id int64) (Token, error)
	// SetSessionToken replaces the sealed OAuth token of the session
	// whose id hashes to h (ErrNotFound when there is no such session).
	SetSessionToken(ctx context.Context, h []byte, tok Sealed) error
}

// CreateSession implements SessionStore; it also drops sessions expired
// by the new one's start.
func (s SQL[T]) CreateSession(ctx context.Context, se Session) error {
	if err := s.check([]string{"created_at", "expires_at"}, se.CreatedAt, se.ExpiresAt); err != nil {
		return s.errorf("create session: %w", err)
	}
	tm := s.Dialect.Time
	if _, err := s.Exec(ctx, `DELETE FROM sessions WHERE expires_at < `+s.Dialect.Param(1), []any{tm(se.CreatedAt)}); err != nil {
		return s.errorf("create session: %w", err)
	}
	if se.Kind == "" {
		se.Kind = "token"
	}
	if _, err := s.Exec(ctx, `INSERT INTO sessions (id_hash, token_id, name, scope, csrf, created_at, expires_at, kind, user_id, projects, projects_until,
		token_key, token_sealed) VALUES (`+s.Dialect.Params(13)+`)`,
		[]any{se.IDHash, se.TokenID, se.Name, se.Scope, se.CSRF, tm(se.CreatedAt), tm(se.ExpiresAt), se.Kind, se.UserID, projectList(se.Projects), tm(se.ProjectsUntil),
			se.OAuthToken.KeyID, sealedData(se.OAuthToken)}); err != nil {
		return s.errorf("create session: %w", err)
	}
	return nil
}

// projectList is how a session's projects are kept: a JSON array, or ""
// for every project.
func projectList(ids []int64) string {
	if ids == nil {
		return ""
	}
	b, _ := json.Marshal(ids)
	return string(b)
}

func parseProjectList(v string) ([]int64, error) {
	if v == "" {
		return nil, nil
	}
	ids := []int64{}
	if err := json.Unmarshal([]byte(v), &ids); err != nil {
		return nil, fmt.Errorf("a session's projects: %w", err)
	}
	return ids, nil
}

// SetSessionProjects implements SessionStore.
func (s SQL[T]) SetSessionProjects(ctx context.Context, h []byte, projects []int64, until time.Time) error {
	if err := s.check([]string{"until"}, until); err != nil {
		return s.errorf("session projects: %w", err)
	}
	n, err := s.Exec(ctx, `UPDATE sessions SET projects = `+s.Dialect.Param(1)+`, projects_until = `+s.Dialect.Param(2)+` WHERE id_hash = `+s.Dialect.Param(3),
		[]any{projectList(projects), s.Dialect.Time(until), h})
	if err != nil {
		return s.errorf("session projects: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// sealedData is v's bytes as a column holds them: never NULL (no secret
// is empty, not NULL).
func sealedData(v Sealed) []byte {
	if v.Data == nil {
		return []byte{}
	}
	return v.Data
}

// SetSessionToken implements SessionStore.
func (s SQL[T]) SetSessionToken(ctx context.Context, h []byte, tok Sealed) error {
	n, err := s.Exec(ctx, `UPDATE sessions SET token_key = `+s.Dialect.Param(1)+`, token_sealed = `+s.Dialect.Param(2)+` WHERE id_hash = `+s.Dialect.Param(3),
		[]any{tok.KeyID, sealedData(tok), h})
	if err != nil {
		return s.errorf("session token: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// SessionByHash implements SessionStore.
func (s SQL[T]) SessionByHash(ctx context.Context, h []byte) (Session, error) {
	out, err := rowsOf(ctx, s.Query, `SELECT id_hash, token_id, name, scope, csrf, created_at, expires_at, kind, user_id, projects, projects_until,
		token_key, token_sealed FROM sessions WHERE id_hash = `+s.Dialect.Param(1),
		[]any{h}, func(r Row) (Session, error) {
			var (
				se                  Session
				created, exp, until T
				projects            string
			)
			if err := r.Scan(&se.IDHash, &se.TokenID, &se.Name, &se.Scope, &se.CSRF, &created, &exp, &se.Kind, &se.UserID, &projects, &until,
				&se.OAuthToken.KeyID, &se.OAuthToken.Data); err != nil {
				return se, err
			}
			if len(se.OAuthToken.Data) == 0 {
				se.OAuthToken.Data = nil
			}
			se.CreatedAt, se.ExpiresAt, se.ProjectsUntil = s.Scan.From(created), s.Scan.From(exp), s.Scan.From(until)
			var err error
			se.Projects, err = parseProjectList(projects)
			return se, err
		})
	switch {
	case err != nil:
		return Session{}, s.errorf("session: %w", err)
	case len(out) == 0:
		return Session{}, ErrNotFound
	}
	return out[0], nil
}

// DeleteSession implements SessionStore.
func (s SQL[T]) DeleteSession(ctx context.Context, h []byte, now time.Time) error {
	if _, err := s.Exec(ctx, `DELETE FROM sessions WHERE id_hash = `+s.Dialect.Param(1)+` OR expires_at < `+s.Dialect.Param(2),
		[]any{h, s.Dialect.Time(now)}); err != nil {
		return s.errorf("delete session: %w", err)
	}
	return nil
}

// TokenByID implements SessionStore.
func (s SQL[T]) TokenByID(ctx context.Context, id int64) (Token, error) {
	ts, err := s.tokenWhere(ctx, "id = ?", id)
	switch {
	case err != nil:
		return Token{}, s.errorf("token: %w", err)
	case len(ts) == 0:
		return Token{}, ErrNotFound
	}
	return ts[0], nil
}
