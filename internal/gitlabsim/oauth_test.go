package gitlabsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

const oauthRedirect = "http://labtrail.test/auth/gitlab/callback"

// oauthSetup registers an application and lets the second user sign in
// with a password, a member of the first and third projects only.
func oauthSetup(t *testing.T) (*gitlabsim.Sim, string, *oauth2.Config, string, []int64) {
	sim, srv := newServer(t, gitlabsim.Options{MRs: 2, Pipelines: 2, Projects: 4})
	sim.AddOAuthApp(gitlabsim.OAuthApp{ID: "app-id", Secret: "app-secret", RedirectURIs: []string{oauthRedirect},
		Scopes: []string{"read_user", "read_api"}})
	user := sim.Usernames()[1]
	if !sim.SetPassword(user, "pw") {
		t.Fatal("SetPassword")
	}
	_, body := get(t, srv, "/api/v4/projects?order_by=id&sort=asc")
	var all []struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(body, &all); err != nil || len(all) != 4 {
		t.Fatalf("projects: %v %s", err, body)
	}
	mine := []int64{all[0].ID, all[2].ID}
	sim.SetMembership(user, mine...)
	conf := &oauth2.Config{ClientID: "app-id", ClientSecret: "app-secret", RedirectURL: oauthRedirect,
		Scopes:   []string{"read_user", "read_api"},
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/oauth/authorize", TokenURL: srv.URL + "/oauth/token"}}
	return sim, srv.URL, conf, user, mine
}

// browse follows the sign-in and the authorization as a browser would,
// up to the redirect to the application, and returns its query.
func browse(t *testing.T, base, authURL, user, password string) url.Values {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var landed *url.URL
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), oauthRedirect) {
			landed = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/users/sign_in" {
		t.Fatalf("not sent to sign in: %s", resp.Request.URL)
	}
	resp, err = c.PostForm(base+"/users/sign_in", url.Values{"user[login]": {user}, "user[password]": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if landed == nil {
		t.Fatalf("not sent back to the application: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return landed.Query()
}

func TestOAuthAuthorizationCodeWithPKCE(t *testing.T) {
	sim, base, conf, user, mine := oauthSetup(t)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	back := browse(t, base, conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), user, "pw")
	if back.Get("state") != "st4te" || back.Get("code") == "" {
		t.Fatalf("redirected with %v", back)
	}
	code := back.Get("code")

	// A wrong verifier spends the code: the right one then fails too.
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption("wrong"+verifier)); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("a wrong verifier: %v", err)
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("a code used twice: %v", err)
	}

	back = browse(t, base, conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)), user, "pw")
	if _, err := conf.Exchange(ctx, back.Get("code")); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("no verifier: %v", err)
	}
	back = browse(t, base, conf.AuthCodeURL("s3", oauth2.S256ChallengeOption(verifier)), user, "pw")
	bad := *conf
	bad.ClientSecret = "nope"
	if _, err := bad.Exchange(ctx, back.Get("code"), oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_client") {
		t.Fatalf("a wrong secret: %v", err)
	}
	tok, err := conf.Exchange(ctx, back.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Expiry.IsZero() || tok.Extra("scope") != "read_user read_api" {
		t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
	}

	hc := conf.Client(ctx, tok)
	var me struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	getJSON(t, hc, base+"/api/v4/user", http.StatusOK, &me)
	if me.Username != user || me.ID == 0 {
		t.Fatalf("/user is %+v, want %s", me, user)
	}
	var ps []struct {
		ID int64 `json:"id"`
	}
	getJSON(t, hc, base+"/api/v4/projects?membership=true&simple=true&order_by=id&sort=asc", http.StatusOK, &ps)
	var ids []int64
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, mine) {
		t.Fatalf("member projects %v, want %v", ids, mine)
	}
	getJSON(t, hc, base+"/api/v4/projects/"+strconv.FormatInt(mine[0]+1, 10), http.StatusNotFound, nil)
	getJSON(t, hc, base+"/api/v4/projects/"+strconv.FormatInt(mine[0], 10), http.StatusOK, nil)

	// An expired access token is refused; the refresh token gets a new one
	// and retires the old pair.
	sim.ExpireOAuthTokens()
	getJSON(t, http.DefaultClient, base+"/api/v4/user?access_token="+tok.AccessToken, http.StatusUnauthorized, nil)
	req, _ := http.NewRequest("GET", base+"/api/v4/user", nil)
	tok.SetAuthHeader(req)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an expired token: %v %v", resp, err)
	}
	stale := *tok
	stale.Expiry = time.Now().Add(-time.Minute) // the client's clock is not the simulator's
	fresh, err := conf.TokenSource(ctx, &stale).Token()
	if err != nil || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %+v %v", fresh, err)
	}
	getJSON(t, conf.Client(ctx, fresh), base+"/api/v4/user", http.StatusOK, nil)
	getJSON(t, http.DefaultClient, base+"/api/v4/user?access_token="+fresh.AccessToken, http.StatusOK, nil)
	if _, err := conf.TokenSource(ctx, &stale).Token(); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("a used refresh token: %v", err)
	}
}

func TestOAuthAuthorizeRefusals(t *testing.T) {
	_, base, conf, user, _ := oauthSetup(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name   string
		change func(*oauth2.Config)
		status int
	}{
		{"unknown client", func(c *oauth2.Config) { c.ClientID = "other" }, http.StatusUnauthorized},
		{"unregistered redirect", func(c *oauth2.Config) { c.RedirectURL = "http://evil.test/cb" }, http.StatusBadRequest},
	} {
		cc := *conf
		tc.change(&cc)
		resp, err := c.Get(cc.AuthCodeURL("s"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d to %q, want %d and no redirect", tc.name, resp.StatusCode, resp.Header.Get("Location"), tc.status)
		}
	}
	cc := *conf
	cc.Scopes = []string{"api"}
	if back := browse(t, base, cc.AuthCodeURL("s"), user, "pw"); back.Get("error") != "invalid_scope" || back.Get("state") != "s" || back.Get("code") != "" {
		t.Errorf("a scope the application may not ask for: %v", back)
	}
	// A wrong password stays on the sign-in page.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.PostForm(base+"/users/sign_in", url.Values{"user[login]": {user}, "user[password]": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong password: %d", resp.StatusCode)
	}
}

// A token granted read_user alone reads /user, not projects.
func TestOAuthReadUserScope(t *testing.T) {
	_, base, conf, user, _ := oauthSetup(t)
	conf.Scopes = []string{"read_user"}
	v := oauth2.GenerateVerifier()
	back := browse(t, base, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), user, "pw")
	tok, err := conf.Exchange(context.Background(), back.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	hc := conf.Client(context.Background(), tok)
	getJSON(t, hc, base+"/api/v4/user", http.StatusOK, nil)
	getJSON(t, hc, base+"/api/v4/projects", http.StatusForbidden, nil)
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}

func getJSON(t *testing.T, c *http.Client, u string, status int, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d, want %d", u, resp.StatusCode, status)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
}
