package auth

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/labtrail/labtrail/internal/store"
)

// Signing in with GitLab (docs/security.md): the OAuth 2 authorization-code
// flow with PKCE (S256) against GitLab, whose user then sees in labtrail
// the projects they are a member of in GitLab, read with their own token
// and kept with the session for CacheTTL. The GitLab token itself is held
// in this process's memory and, when a secret key is configured
// (OAuthConfig.Keyring), sealed with the session in the store, so that
// another replica, or this one after a restart, reads the user's projects
// again with it. Without a key, a session whose project list is due to be
// read again after a restart, or on another replica, ends, and its user
// signs in again.

// OAuthCookie holds a sign-in in progress: its state, PKCE verifier and
// where to go after it, for OAuthStartTTL.
const OAuthCookie = "labtrail_oauth"

// OAuthStartTTL is how long a sign-in with GitLab may take.
const OAuthStartTTL = 10 * time.Minute

// DefaultProjectsTTL is how long a GitLab user's project list is used
// before it is read from GitLab again.
const DefaultProjectsTTL = 10 * time.Minute

// OAuthScopes are what labtrail asks GitLab for: read_user for
// /api/v4/user, read_api for the user's projects.
var OAuthScopes = []string{"read_user", "read_api"}

// maxProjectPages bounds reading one user's projects (100 a page).
const maxProjectPages = 200

// ErrSignInRefused is why a sign-in with GitLab failed on the user's
// side: a stale or forged callback, a refusal at GitLab, a code GitLab
// did not accept. Other errors are GitLab or the store failing.
var ErrSignInRefused = errors.New("sign-in with GitLab refused")

// OAuthConfig configures signing in with GitLab.
type OAuthConfig struct {
	GitLabURL              string // GitLab's base URL
	ClientID, ClientSecret string
	// RedirectURL is labtrail's /auth/gitlab/callback as browsers reach it.
	RedirectURL string
	// Admins are the GitLab usernames that get scope admin (and see every
	// project); every other GitLab user gets read.
	Admins []string
	// ProjectsTTL is DefaultProjectsTTL when zero.
	ProjectsTTL time.Duration
	// HTTPClient talks to GitLab; nil: one with a 30 s timeout.
	HTTPClient *http.Client
	// Keyring, when not nil, seals each session's GitLab token into the
	// store (AES-256-GCM, bound to the session); nil keeps it in this
	// process's memory only.
	Keyring *Keyring
}

// GitLabOAuth signs people in with GitLab and keeps their project lists.
type GitLabOAuth struct {
	conf   oauth2.Config
	api    string // GitLab's /api/v4
	admins []string
	ttl    time.Duration
	client *http.Client
	sess   *Sessions
	ring   *Keyring // nil: tokens in memory only

	mu      sync.Mutex
	tokens  map[string]*userToken // by session id hash
	refresh map[string]*sync.Mutex
}

// userToken is a signed-in user's GitLab token as this process holds it.
type userToken struct {
	mu      sync.Mutex
	tok     *oauth2.Token
	userID  int64
	expires time.Time // the session's end
	h       []byte    // the session's id hash; nil before it starts
}

// NewGitLabOAuth returns sign-in with GitLab as c says, starting sessions
// with sess; sess then reads GitLab users' project lists again through it.
func NewGitLabOAuth(c OAuthConfig, sess *Sessions) (*GitLabOAuth, error) {
	base, err := url.Parse(strings.TrimRight(c.GitLabURL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("the GitLab URL %q is not an http(s) URL", c.GitLabURL)
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return nil, errors.New("signing in with GitLab needs the application's id and secret")
	}
	if u, err := url.Parse(c.RedirectURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("the redirect URL %q is not an http(s) URL", c.RedirectURL)
	}
	g := &GitLabOAuth{
		conf: oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURL, Scopes: OAuthScopes,
			Endpoint: oauth2.Endpoint{AuthURL: base.String() + "/oauth/authorize", TokenURL: base.String() + "/oauth/token"}},
		api: base.String() + "/api/v4", ttl: c.ProjectsTTL, client: c.HTTPClient, sess: sess, ring: c.Keyring,
		tokens: map[string]*userToken{}, refresh: map[string]*sync.Mutex{},
	}
	for _, a := range c.Admins {
		if a = strings.TrimPrefix(strings.TrimSpace(a), "@"); a != "" {
			g.admins = append(g.admins, strings.ToLower(a))
		}
	}
	if g.ttl <= 0 {
		g.ttl = DefaultProjectsTTL
	}
	if g.client == nil {
		g.client = &http.Client{Timeout: 30 * time.Second}
	}
	sess.oauth = g
	return g, nil
}

func (g *GitLabOAuth) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, g.client)
}

// Start begins a sign-in: it binds a new state and PKCE verifier to the
// browser with a short-lived cookie, and returns GitLab's authorization
// URL to send the browser to. next is where to go once signed in.
func (g *GitLabOAuth) Start(w http.ResponseWriter, next string) (string, error) {
	state, err := random(32)
	if err != nil {
		return "", err
	}
	verifier := oauth2.GenerateVerifier()
	v := url.Values{"s": {state}, "v": {verifier}, "n": {next}}
	// SameSite Lax: GitLab's redirect back is a top-level GET from
	// another site, which Lax cookies go with.
	http.SetCookie(w, &http.Cookie{Name: OAuthCookie, Value: v.Encode(), Path: "/auth/gitlab", MaxAge: int(OAuthStartTTL / time.Second),
		HttpOnly: true, Secure: g.sess.Secure, SameSite: http.SameSiteLaxMode})
	return g.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

// gitlabUser is what labtrail reads of GET /api/v4/user.
type gitlabUser struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	State    string `json:"state"`
}

// Finish completes a sign-in at the callback r: the state must be the
// cookie's, the code is exchanged with the cookie's verifier, and the
// user's projects are read with their token. It starts the session and
// returns its principal and where to go next. Its error wraps
// ErrSignInRefused for what the user's side got wrong.
func (g *GitLabOAuth) Finish(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Principal, string, error) {
	http.SetCookie(w, &http.Cookie{Name: OAuthCookie, Value: "", Path: "/auth/gitlab", MaxAge: -1,
		HttpOnly: true, Secure: g.sess.Secure, SameSite: http.SameSiteLaxMode})
	c, err := r.Cookie(OAuthCookie)
	if err != nil {
		return nil, "/", fmt.Errorf("%w: this browser started no sign-in here in the last %s (or refuses cookies): start again", ErrSignInRefused, OAuthStartTTL)
	}
	v, err := url.ParseQuery(c.Value)
	if err != nil || v.Get("s") == "" || v.Get("v") == "" {
		return nil, "/", fmt.Errorf("%w: the sign-in cookie is damaged: start again", ErrSignInRefused)
	}
	next := v.Get("n")
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(v.Get("s"))) != 1 {
		return nil, next, fmt.Errorf("%w: the answer from GitLab does not belong to this browser's sign-in (state differs): start again", ErrSignInRefused)
	}
	if e := q.Get("error"); e != "" {
		return nil, next, fmt.Errorf("%w: GitLab answered %s: %s", ErrSignInRefused, e, q.Get("error_description"))
	}
	if q.Get("code") == "" {
		return nil, next, fmt.Errorf("%w: GitLab sent no authorization code", ErrSignInRefused)
	}
	tok, err := g.conf.Exchange(g.ctx(ctx), q.Get("code"), oauth2.VerifierOption(v.Get("v")))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return nil, next, fmt.Errorf("%w: GitLab did not accept the authorization code (%s)", ErrSignInRefused, cmp.Or(re.ErrorCode, re.Response.Status))
		}
		return nil, next, fmt.Errorf("exchanging the code with GitLab: %w", err)
	}
	src := &userToken{tok: tok}
	u, err := g.user(ctx, src)
	if err != nil {
		return nil, next, err
	}
	if u.State != "" && u.State != "active" {
		return nil, next, fmt.Errorf("%w: the GitLab account %s is %s", ErrSignInRefused, u.Username, u.State)
	}
	scope, projects := ScopeRead, []int64(nil)
	if slices.Contains(g.admins, strings.ToLower(u.Username)) {
		scope = ScopeAdmin
	} else if projects, err = g.projects(ctx, src); err != nil {
		return nil, next, err
	}
	now := g.sess.now().UTC()
	se := store.Session{Kind: "oauth", UserID: u.ID, Name: u.Username, Scope: scope.String(), Projects: projects,
		ProjectsUntil: now.Add(g.ttl)}
	id, p, err := g.sess.start(ctx, w, se)
	if err != nil {
		return nil, next, err
	}
	h := HashToken(id)
	src.userID, src.expires, src.h = u.ID, now.Add(g.sess.TTL), h
	if err := g.persist(ctx, src, src.tok); err != nil {
		_ = g.sess.st.DeleteSession(ctx, h, now)
		return nil, next, err
	}
	g.keep(h, src)
	return p, next, nil
}

// keep holds a session's GitLab token, dropping those of ended sessions.
func (g *GitLabOAuth) keep(h []byte, t *userToken) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for k, old := range g.tokens {
		if !now.Before(old.expires) {
			delete(g.tokens, k)
			delete(g.refresh, k)
		}
	}
	g.tokens[string(h)] = t
}

// forget drops a session's GitLab token (signed out).
func (g *GitLabOAuth) forget(h []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.tokens, string(h))
	delete(g.refresh, string(h))
}

// renew reads a session's projects from GitLab again and keeps them, or
// says why the session must end. One renewal of a session runs at a time;
// requests arriving meanwhile wait for it and use what it read.
func (g *GitLabOAuth) renew(ctx context.Context, h []byte, se store.Session) (store.Session, error) {
	g.mu.Lock()
	t := g.tokens[string(h)]
	lock := g.refresh[string(h)]
	if lock == nil {
		lock = &sync.Mutex{}
		g.refresh[string(h)] = lock
	}
	g.mu.Unlock()
	if t == nil {
		var err error
		if t, err = g.load(h, se); err != nil {
			return se, err
		}
		g.keep(h, t)
	}
	lock.Lock()
	defer lock.Unlock()
	// Another request may have renewed it while this one waited.
	if cur, err := g.sess.st.SessionByHash(ctx, h); err == nil && g.sess.now().Before(cur.ProjectsUntil) {
		return cur, nil
	}
	u, err := g.user(ctx, t)
	if err != nil {
		return se, err
	}
	if u.ID != t.userID || (u.State != "" && u.State != "active") {
		return se, fmt.Errorf("the GitLab account %s is no longer active: sign in again", se.Name)
	}
	var projects []int64
	if se.Projects != nil {
		if projects, err = g.projects(ctx, t); err != nil {
			return se, err
		}
	}
	until := g.sess.now().UTC().Add(g.ttl)
	if err := g.sess.st.SetSessionProjects(ctx, h, projects, until); err != nil {
		return se, err
	}
	se.Projects, se.ProjectsUntil = projects, until
	return se, nil
}

// token is ut's access token, refreshed with its refresh token when it
// has expired or, with force, when GitLab refused it (GitLab's clock and
// revocations are its own).
func (g *GitLabOAuth) token(ctx context.Context, ut *userToken, force bool) (*oauth2.Token, error) {
	ut.mu.Lock()
	defer ut.mu.Unlock()
	if !force && ut.tok.Valid() {
		return ut.tok, nil
	}
	if ut.tok.RefreshToken == "" {
		return nil, fmt.Errorf("%w: GitLab's token for this sign-in has expired: sign in again", ErrSignInRefused)
	}
	// Another replica may have renewed it: GitLab then no longer takes
	// the refresh token this one holds.
	if cur, err := g.stored(ctx, ut); err == nil && cur != nil && cur.AccessToken != ut.tok.AccessToken && cur.Valid() {
		ut.tok = cur
		return cur, nil
	}
	tok, err := g.conf.TokenSource(g.ctx(ctx), &oauth2.Token{RefreshToken: ut.tok.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return nil, fmt.Errorf("%w: GitLab no longer accepts this sign-in (%s): sign in again", ErrSignInRefused, cmp.Or(re.ErrorCode, re.Response.Status))
		}
		return nil, fmt.Errorf("renewing the GitLab token: %w", err)
	}
	ut.tok = tok
	if err := g.persist(ctx, ut, tok); err != nil {
		return nil, err
	}
	return tok, nil
}

// The sealed form of a session's GitLab token: what oauth2.Token holds
// that a later request needs.
type keptToken struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// sessionTokenContext binds a sealed token to its session: one copied
// onto another session's row does not open.
func sessionTokenContext(h []byte) string { return fmt.Sprintf("session/%x/oauth_token", h) }

// persist seals tok into ut's session in the store, when g has a key and
// the session has started.
func (g *GitLabOAuth) persist(ctx context.Context, ut *userToken, tok *oauth2.Token) error {
	if g.ring == nil || ut.h == nil {
		return nil
	}
	b, err := json.Marshal(keptToken{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry})
	if err != nil {
		return err
	}
	sealed, err := g.ring.Seal(string(b), sessionTokenContext(ut.h))
	if err != nil {
		return fmt.Errorf("sealing the GitLab sign-in's token: %w", err)
	}
	if err := g.sess.st.SetSessionToken(ctx, ut.h, sealed); err != nil {
		return fmt.Errorf("keeping the GitLab sign-in's token: %w", err)
	}
	return nil
}

// open is the token sealed in se (nil when none is).
func (g *GitLabOAuth) open(h []byte, sealed store.Sealed) (*oauth2.Token, error) {
	if g.ring == nil || sealed.IsZero() {
		return nil, nil
	}
	plain, err := g.ring.Open(sealed, sessionTokenContext(h))
	if err != nil {
		return nil, err
	}
	var k keptToken
	if err := json.Unmarshal([]byte(plain), &k); err != nil || k.AccessToken == "" {
		return nil, errors.New("a sealed GitLab token is not one")
	}
	return &oauth2.Token{AccessToken: k.AccessToken, TokenType: k.TokenType, RefreshToken: k.RefreshToken, Expiry: k.Expiry}, nil
}

// load is session se's token as the store keeps it, for a process that
// did not sign it in (another replica, or this one restarted).
func (g *GitLabOAuth) load(h []byte, se store.Session) (*userToken, error) {
	again := "your GitLab sign-in has to be renewed (labtrail restarted, or this is another of its replicas, and it keeps no GitLab token in the store without LABTRAIL_SECRET_KEY): sign in again"
	tok, err := g.open(h, se.OAuthToken)
	switch {
	case err != nil:
		return nil, errors.New("your GitLab sign-in has to be renewed (its token was sealed under another secret key): sign in again")
	case tok == nil:
		return nil, errors.New(again)
	}
	return &userToken{tok: tok, userID: se.UserID, expires: se.ExpiresAt, h: h}, nil
}

// stored is ut's session's token as the store keeps it now; nil when g
// keeps none there.
func (g *GitLabOAuth) stored(ctx context.Context, ut *userToken) (*oauth2.Token, error) {
	if g.ring == nil || ut.h == nil {
		return nil, nil
	}
	se, err := g.sess.st.SessionByHash(ctx, ut.h)
	if err != nil {
		return nil, err
	}
	return g.open(ut.h, se.OAuthToken)
}

// getJSON GETs GitLab's API path with ut's token into v, and returns the
// answer's headers. A token GitLab refuses is refreshed once.
func (g *GitLabOAuth) getJSON(ctx context.Context, ut *userToken, path string, v any) (http.Header, error) {
	what := strings.SplitN(path, "?", 2)[0]
	for retried := false; ; retried = true {
		tok, err := g.token(ctx, ut, retried)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.api+path, nil)
		if err != nil {
			return nil, err
		}
		tok.SetAuthHeader(req)
		resp, err := g.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("reading %s from GitLab: %w", what, err)
		}
		h, err := readJSON(resp, v)
		switch {
		case err == nil:
			return h, nil
		case resp.StatusCode == http.StatusUnauthorized && !retried && ut.tok.RefreshToken != "":
			continue
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return nil, fmt.Errorf("%w: GitLab answered %s to %s with this sign-in's token (it needs scopes %s)", ErrSignInRefused,
				resp.Status, what, strings.Join(OAuthScopes, " "))
		default:
			return nil, fmt.Errorf("reading %s from GitLab: %w", what, err)
		}
	}
}

// readJSON reads a 200 answer's JSON into v and closes its body.
func readJSON(resp *http.Response, v any) (http.Header, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return nil, err
	}
	return resp.Header, nil
}

func (g *GitLabOAuth) user(ctx context.Context, src *userToken) (gitlabUser, error) {
	var u gitlabUser
	if _, err := g.getJSON(ctx, src, "/user", &u); err != nil {
		return u, err
	}
	if u.ID == 0 || u.Username == "" {
		return u, errors.New("GitLab's /user answer has no id or username")
	}
	return u, nil
}

// projects reads the ids of the projects the token's user is a member
// of, every page of them.
func (g *GitLabOAuth) projects(ctx context.Context, src *userToken) ([]int64, error) {
	ids := []int64{}
	for page := 1; page > 0; {
		if page > maxProjectPages {
			return nil, fmt.Errorf("the GitLab user is a member of more than %d projects: labtrail stops reading there", maxProjectPages*100)
		}
		var ps []struct {
			ID int64 `json:"id"`
		}
		h, err := g.getJSON(ctx, src, "/projects?membership=true&simple=true&per_page=100&order_by=id&sort=asc&page="+strconv.Itoa(page), &ps)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		next := 0
		if n, err := strconv.Atoi(h.Get("X-Next-Page")); err == nil && n > page && len(ps) > 0 {
			next = n
		}
		page = next
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
