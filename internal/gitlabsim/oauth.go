package gitlabsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// GitLab as an OAuth 2 identity provider (GitLab's doc/api/oauth2.md,
// built on Doorkeeper): applications registered with AddOAuthApp, people
// signing in at /users/sign_in with a password set by SetPassword, the
// authorization-code flow with PKCE at /oauth/authorize and /oauth/token
// (authorization_code and refresh_token grants), and the REST API answering
// an OAuth access token as its user: /api/v4/user is that user, and the
// user sees only the projects they are a member of (SetMembership; by
// default the projects they own), as on a GitLab whose projects are all
// private. The simulator approves an application's request without a
// consent page, as GitLab does for a trusted application. GraphQL answers
// the personal access token (Options.Token) only.

// OAuthApp is an application registered in GitLab (User settings >
// Applications, or Admin > Applications).
type OAuthApp struct {
	ID, Secret   string
	RedirectURIs []string
	Scopes       []string // the scopes it may ask for
	// Public apps (not confidential) authenticate with PKCE alone; a
	// confidential app must send its secret too.
	Public bool
}

const (
	oauthCodeTTL   = 10 * time.Minute // Doorkeeper's authorization_code_expires_in
	oauthTokenTTL  = 2 * time.Hour    // GitLab's access token lifetime
	simSessionName = "_gitlab_session"
	returnToCookie = "_gitlab_return_to"
)

type oauthGrant struct {
	app                  *OAuthApp
	user                 *user
	redirectURI          string
	scopes               []string
	challenge, method    string
	expires              time.Time
	accessToken, refresh string
}

type oauthToken struct {
	app     *OAuthApp
	user    *user
	scopes  []string
	created time.Time
	expires time.Time
	refresh string
}

func (t *oauthToken) has(scopes ...string) bool {
	return slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(t.scopes, s) })
}

// oauthState is what the identity provider keeps.
type oauthState struct {
	mu        sync.Mutex
	apps      map[string]*OAuthApp
	passwords map[string]string         // username -> password
	sessions  map[string]string         // browser session -> username
	codes     map[string]*oauthGrant    // authorization codes
	tokens    map[string]*oauthToken    // access tokens
	refreshes map[string]*oauthToken    // refresh token -> its access token's
	members   map[string]map[int64]bool // username -> project ids, when set
	issued    []string                  // every access and refresh token and code, for tests' secret scans
}

func (o *oauthState) init() {
	if o.apps == nil {
		o.apps, o.passwords, o.sessions = map[string]*OAuthApp{}, map[string]string{}, map[string]string{}
		o.codes, o.tokens, o.refreshes = map[string]*oauthGrant{}, map[string]*oauthToken{}, map[string]*oauthToken{}
		o.members = map[string]map[int64]bool{}
	}
}

// AddOAuthApp registers an OAuth application.
func (s *Sim) AddOAuthApp(a OAuthApp) {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.init()
	a.RedirectURIs, a.Scopes = slices.Clone(a.RedirectURIs), slices.Clone(a.Scopes)
	s.oauth.apps[a.ID] = &a
}

// Usernames lists the simulated users; the first owns Options.Token.
func (s *Sim) Usernames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, len(s.w.users))
	for i, u := range s.w.users {
		out[i] = u.username
	}
	return out
}

func (s *Sim) userNamed(name string) *user {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, u := range s.w.users {
		if u.username == name {
			return u
		}
	}
	return nil
}

// SetPassword lets username sign in at /users/sign_in with password.
func (s *Sim) SetPassword(username, password string) bool {
	if s.userNamed(username) == nil {
		return false
	}
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.init()
	s.oauth.passwords[username] = password
	return true
}

// SetMembership makes username a member of the projects ids and of no
// other; it reports false for an unknown user.
func (s *Sim) SetMembership(username string, ids ...int64) bool {
	if s.userNamed(username) == nil {
		return false
	}
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.init()
	m := map[int64]bool{}
	for _, id := range ids {
		m[id] = true
	}
	s.oauth.members[username] = m
	return true
}

// ExpireOAuthTokens makes every OAuth access token issued so far expired,
// as two hours passing would; their refresh tokens still work.
func (s *Sim) ExpireOAuthTokens() {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	for _, t := range s.oauth.tokens {
		t.expires = time.Time{}
	}
}

// OAuthSecrets lists every authorization code, access token and refresh
// token the simulator has issued, so that a test can look for them where
// they must not be.
func (s *Sim) OAuthSecrets() []string {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	return slices.Clone(s.oauth.issued)
}

// member reports whether u may see p: the token's user sees every
// project; another user the projects they are a member of.
func (s *Sim) member(u *user, p *project) bool {
	if u == nil {
		return true
	}
	s.oauth.mu.Lock()
	m, ok := s.oauth.members[u.username]
	s.oauth.mu.Unlock()
	if ok {
		return m[p.id]
	}
	return p.owner == u
}

// oauthUser is the live access token tok, or nil.
func (s *Sim) oauthUser(tok string) *oauthToken {
	if tok == "" {
		return nil
	}
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	t := s.oauth.tokens[tok]
	if t == nil || !s.now().Before(t.expires) {
		return nil
	}
	return t
}

func randomHex() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveOAuth answers /oauth/* and /users/sign_in; false when path is
// neither.
func (s *Sim) serveOAuth(w http.ResponseWriter, r *http.Request, path string) bool {
	switch {
	case path == "/users/sign_in" && r.Method == http.MethodGet:
		s.signInPage(w, "")
	case path == "/users/sign_in" && r.Method == http.MethodPost:
		s.signIn(w, r)
	case path == "/oauth/authorize" && r.Method == http.MethodGet:
		s.authorize(w, r)
	case path == "/oauth/token" && r.Method == http.MethodPost:
		s.token(w, r)
	default:
		return false
	}
	return true
}

var signInTmpl = template.Must(template.New("").Parse(`<!DOCTYPE html>
<html><head><title>Sign in · GitLab</title></head><body>
{{if .}}<p class="flash-alert">{{.}}</p>{{end}}
<form id="new_user" action="/users/sign_in" method="post">
<input type="text" name="user[login]" id="user_login" autocomplete="username">
<input type="password" name="user[password]" id="user_password" autocomplete="current-password">
<button type="submit" name="button">Sign in</button>
</form></body></html>
`))

func (s *Sim) signInPage(w http.ResponseWriter, alert string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if alert != "" {
		w.WriteHeader(http.StatusUnauthorized)
	}
	_ = signInTmpl.Execute(w, alert)
}

func (s *Sim) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8192)
	login, pw := r.PostFormValue("user[login]"), r.PostFormValue("user[password]")
	s.oauth.mu.Lock()
	s.oauth.init()
	want, ok := s.oauth.passwords[login]
	good := ok && subtle.ConstantTimeCompare([]byte(want), []byte(pw)) == 1
	id := randomHex()
	if good {
		s.oauth.sessions[id] = login
	}
	s.oauth.mu.Unlock()
	if !good {
		s.signInPage(w, "Invalid login or password.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: simSessionName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	next := "/"
	if c, err := r.Cookie(returnToCookie); err == nil && strings.HasPrefix(c.Value, "/") && !strings.HasPrefix(c.Value, "//") {
		next = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: returnToCookie, Path: "/", MaxAge: -1})
	http.Redirect(w, r, next, http.StatusFound)
}

// sessionUser is the signed-in user of r's browser, or nil.
func (s *Sim) sessionUser(r *http.Request) *user {
	c, err := r.Cookie(simSessionName)
	if err != nil {
		return nil
	}
	s.oauth.mu.Lock()
	name := s.oauth.sessions[c.Value]
	s.oauth.mu.Unlock()
	if name == "" {
		return nil
	}
	return s.userNamed(name)
}

// authorize is GET /oauth/authorize. An unknown client or a redirect URI
// the application did not register is shown as an error page, never
// redirected to; other errors go back to the redirect URI as RFC 6749
// 4.1.2.1 says.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.oauth.mu.Lock()
	s.oauth.init()
	app := s.oauth.apps[q.Get("client_id")]
	s.oauth.mu.Unlock()
	if app == nil {
		http.Error(w, "An error has occurred: Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.", http.StatusUnauthorized)
		return
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(app.RedirectURIs, redirect) {
		http.Error(w, "An error has occurred: The redirect URI included is not valid.", http.StatusBadRequest)
		return
	}
	u := s.sessionUser(r)
	if u == nil {
		http.SetCookie(w, &http.Cookie{Name: returnToCookie, Value: r.URL.RequestURI(), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/users/sign_in", http.StatusFound)
		return
	}
	back := func(v url.Values) {
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		sep := "?"
		if strings.Contains(redirect, "?") {
			sep = "&"
		}
		http.Redirect(w, r, redirect+sep+v.Encode(), http.StatusFound)
	}
	fail := func(code, desc string) { back(url.Values{"error": {code}, "error_description": {desc}}) }
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "The authorization server does not support this response type.")
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		scopes = app.Scopes
	}
	for _, sc := range scopes {
		if !slices.Contains(app.Scopes, sc) {
			fail("invalid_scope", "The requested scope is invalid, unknown, or malformed.")
			return
		}
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge != "" && method == "" {
		method = "plain"
	}
	if challenge != "" && method != "S256" && method != "plain" {
		fail("invalid_request", "The code_challenge_method must be one of plain, S256.")
		return
	}
	if challenge == "" && app.Public {
		fail("invalid_request", "The request is missing a required parameter: code_challenge.")
		return
	}
	code := randomHex()
	s.oauth.mu.Lock()
	s.oauth.issued = append(s.oauth.issued, code)
	s.oauth.codes[code] = &oauthGrant{app: app, user: u, redirectURI: redirect, scopes: slices.Clone(scopes),
		challenge: challenge, method: method, expires: s.now().Add(oauthCodeTTL)}
	s.oauth.mu.Unlock()
	back(url.Values{"code": {code}})
}

type oauthTokenJSON struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	CreatedAt    int64  `json:"created_at"`
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

const invalidGrant = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."

// token is POST /oauth/token: the authorization_code and refresh_token
// grants. The client authenticates with HTTP Basic or client_id and
// client_secret in the form.
func (s *Sim) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16384)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed.")
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.init()
	app := s.oauth.apps[id]
	if app == nil || (!app.Public || secret != "") && subtle.ConstantTimeCompare([]byte(app.Secret), []byte(secret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.")
		return
	}
	now := s.now()
	var issue *oauthToken
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := r.PostForm.Get("code")
		g := s.oauth.codes[code]
		if g == nil || g.app != app || !now.Before(g.expires) || g.redirectURI != r.PostForm.Get("redirect_uri") {
			oauthError(w, http.StatusBadRequest, "invalid_grant", invalidGrant)
			return
		}
		// A code is used once, whatever the outcome.
		delete(s.oauth.codes, code)
		if g.challenge != "" {
			v := r.PostForm.Get("code_verifier")
			got := v
			if g.method == "S256" {
				sum := sha256.Sum256([]byte(v))
				got = base64.RawURLEncoding.EncodeToString(sum[:])
			}
			if v == "" || subtle.ConstantTimeCompare([]byte(got), []byte(g.challenge)) != 1 {
				oauthError(w, http.StatusBadRequest, "invalid_grant", invalidGrant)
				return
			}
		}
		issue = &oauthToken{app: app, user: g.user, scopes: g.scopes}
	case "refresh_token":
		old := s.oauth.refreshes[r.PostForm.Get("refresh_token")]
		if old == nil || old.app != app {
			oauthError(w, http.StatusBadRequest, "invalid_grant", invalidGrant)
			return
		}
		// Refreshing revokes the old access and refresh tokens.
		delete(s.oauth.refreshes, old.refresh)
		for k, t := range s.oauth.tokens {
			if t == old {
				delete(s.oauth.tokens, k)
			}
		}
		issue = &oauthToken{app: app, user: old.user, scopes: old.scopes}
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed.")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server.")
		return
	}
	access := randomHex()
	issue.created, issue.expires, issue.refresh = now, now.Add(oauthTokenTTL), randomHex()
	s.oauth.tokens[access] = issue
	s.oauth.refreshes[issue.refresh] = issue
	s.oauth.issued = append(s.oauth.issued, access, issue.refresh)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, oauthTokenJSON{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(oauthTokenTTL / time.Second),
		RefreshToken: issue.refresh, Scope: strings.Join(issue.scopes, " "), CreatedAt: now.Unix()})
}

// oauthAdmit checks an OAuth access token's request to the REST API: its
// scopes, and that the project it names is one its user may see. It has
// answered when it returns false.
func (s *Sim) oauthAdmit(w http.ResponseWriter, r *http.Request, t *oauthToken, rt route, segs []string) bool {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case t.has("api"):
	case read && t.has("read_api"):
	case read && rt.readUser && t.has("read_user"):
	default:
		insufficientScope(w, "api read_api")
		return false
	}
	if len(segs) >= 2 && segs[0] == "projects" {
		s.mu.RLock()
		p := s.findProject(segs[1])
		s.mu.RUnlock()
		if p == nil || !s.member(t.user, p) {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
			return false
		}
	}
	return true
}
