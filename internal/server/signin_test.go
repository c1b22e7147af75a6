package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// TestSignInWithToken signs in to the dashboard as a browser would: a
// token pasted once, then a session cookie; form posts need the session's
// form token; signing out, or revoking the token, ends the session.
func TestSignInWithToken(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tokens := auth.NewTokens(st)
	srv.EnableAuth(tokens, server.AuthOptions{Audit: st})
	srv.EnableSessions(auth.NewSessions(st, tokens, false))
	hs := httptest.NewServer(srv)
	defer hs.Close()
	admin, _, err := tokens.Create(ctx, "ops", auth.ScopeAdmin, 0)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	post := func(path string, form url.Values) (*http.Response, string) {
		req, _ := http.NewRequest("POST", hs.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Origin", hs.URL)
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	// A page without a session sends the browser to the form, and back.
	resp, body := get("/timeline?kind=issue")
	if resp.Request.URL.Path != "/signin" || resp.Request.URL.Query().Get("next") != "/timeline?kind=issue" || !strings.Contains(body, `id="signin-form"`) {
		t.Fatalf("a page without a session ended at %s: %d", resp.Request.URL, resp.StatusCode)
	}
	// A wrong token: the form again, 401, saying why, naming no token.
	resp, body = post("/signin", url.Values{"token": {"lt_wrong"}, "next": {"/timeline"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "unknown token") {
		t.Fatalf("a wrong token: %d %s", resp.StatusCode, body)
	}
	// The right one: to next, signed in, the cookie HttpOnly and Lax.
	resp, body = post("/signin", url.Values{"token": {admin}, "next": {"/timeline?kind=issue"}})
	if resp.StatusCode != 200 || resp.Request.URL.RequestURI() != "/timeline?kind=issue" || !strings.Contains(body, `class="who">ops<`) {
		t.Fatalf("signed in: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	cookie := resp.Request.Header.Get("Cookie")
	if !strings.Contains(cookie, auth.SessionCookie+"=") || strings.Contains(body, admin) {
		t.Fatalf("session cookie %q, or the token in the page", cookie)
	}
	// A form post of the session without its form token is refused; with
	// it, let through.
	if resp, _ := post("/sync/deliveries/1/replay", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a replay without the form token: %d, want 403", resp.StatusCode)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("the page has no form token")
	}
	if resp, _ := post("/sync/deliveries/1/replay", url.Values{"csrf": {csrf[1]}}); resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("a replay with the form token: %d", resp.StatusCode)
	}
	// next never leads to another site.
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example"} {
		resp, _ := post("/signin", url.Values{"token": {admin}, "next": {next}})
		if resp.Request.URL.Host != strings.TrimPrefix(hs.URL, "http://") || resp.Request.URL.Path != "/" {
			t.Errorf("next=%q led to %s", next, resp.Request.URL)
		}
	}
	// Signing out needs the form token, and ends the session.
	_, body = get("/")
	csrf = regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if resp, _ := post("/signout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign out without the form token: %d", resp.StatusCode)
	}
	if resp, _ := post("/signout", url.Values{"csrf": {csrf[1]}}); resp.Request.URL.Path != "/signin" {
		t.Errorf("sign out ended at %s", resp.Request.URL)
	}
	if resp, _ := get("/pipelines"); resp.Request.URL.Path != "/signin" {
		t.Errorf("after signing out a page is at %s", resp.Request.URL)
	}
	// Revoking the token ends its sessions.
	post("/signin", url.Values{"token": {admin}})
	if resp, _ := get("/deployments"); resp.Request.URL.Path != "/deployments" {
		t.Fatalf("signed in again: at %s", resp.Request.URL)
	}
	if _, err := st.RevokeToken(ctx, "ops", time.Now()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get("/deployments"); resp.Request.URL.Path != "/signin" {
		t.Errorf("with its token revoked, the session still shows %s", resp.Request.URL)
	}
	// The sign-ins are in the admin audit trail.
	as, _ := st.AdminActions(ctx, 0, 100)
	var in, failed int
	for _, a := range as {
		switch a.Action {
		case "signin":
			in++
		case "signin.failed":
			failed++
		}
	}
	if in < 2 || failed < 1 {
		t.Errorf("admin audit: %d sign-ins, %d failed", in, failed)
	}
}
