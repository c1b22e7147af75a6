package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

func newKeyring(t *testing.T) *auth.Keyring {
	t.Helper()
	text, err := auth.NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewKeyring(k)
}

// replica is another labtrail process over w's database, signing in
// with GitLab as conf says: its own memory, its own address.
func (w *gitlabWorld) replica(t *testing.T, conf auth.OAuthConfig) *httptest.Server {
	t.Helper()
	srv := server.New(w.st, slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv.EnableMetrics(metrics.New(w.st, metrics.Config{}))
	tokens := auth.NewTokens(w.st)
	srv.EnableAuth(tokens, server.AuthOptions{Audit: w.st})
	sessions := auth.NewSessions(w.st, tokens, false)
	srv.EnableSessions(sessions)
	g, err := auth.NewGitLabOAuth(conf, sessions)
	if err != nil {
		t.Fatal(err)
	}
	srv.EnableGitLabSignin(g)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs
}

// TestSignInWithGitLabSealedToken: with a secret key, a GitLab sign-in's
// token is kept sealed with its session, so the session outlives the
// process that signed it in and moves to another replica, which reads
// the user's projects again with it, renews it when GitLab refuses it,
// and hands the renewed token on. The raw row holds no token in the
// clear; neither do the logs nor the answers. A process with another key
// cannot open it: its user signs in again.
func TestSignInWithGitLabSealedToken(t *testing.T) {
	w := newGitLabWorld(t)
	ctx := context.Background()
	w.oauthConf.Keyring = newKeyring(t)
	w.enable(t)
	b := w.browser(t)
	if resp, _ := b.signIn(w.user, "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	h := auth.HashToken(b.cookieAt(auth.SessionCookie))
	se, err := w.st.SessionByHash(ctx, h)
	if err != nil || se.OAuthToken.KeyID != w.oauthConf.Keyring.CurrentID() || len(se.OAuthToken.Data) == 0 {
		t.Fatalf("the stored session's token: key %q, %d bytes, %v", se.OAuthToken.KeyID, len(se.OAuthToken.Data), err)
	}
	due := func() {
		t.Helper()
		if err := w.st.SetSessionProjects(ctx, h, se.Projects, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	projectsAt := func(base string) ([]string, int) {
		var ps struct{ Projects []store.Project }
		code := b.api(base+"/api/v1/projects", &ps)
		return projectPaths(ps.Projects), code
	}
	mine := projectPaths([]store.Project{w.projects[0], w.projects[2]})

	// A restart: the new process reads the list again with the sealed
	// token, and sees GitLab's change.
	w.enable(t)
	w.sim.SetMembership(w.user, w.projects[0].ID, w.projects[1].ID, w.projects[2].ID)
	due()
	mine = projectPaths([]store.Project{w.projects[0], w.projects[1], w.projects[2]})
	if got, code := projectsAt(""); code != 200 || !slices.Equal(got, mine) {
		t.Fatalf("after a restart: %d %v, want %v", code, got, mine)
	}

	// Another replica renews the token GitLab no longer takes (the old
	// refresh token is revoked by it); the first, holding the old one,
	// takes the renewed one from the store instead of signing out.
	other := w.replica(t, w.oauthConf)
	w.sim.ExpireOAuthTokens()
	due()
	if got, code := projectsAt(other.URL); code != 200 || !slices.Equal(got, mine) {
		t.Fatalf("on another replica: %d %v, want %v", code, got, mine)
	}
	renewed, _ := w.st.SessionByHash(ctx, h)
	if bytes.Equal(renewed.OAuthToken.Data, se.OAuthToken.Data) {
		t.Fatal("the renewed token was not kept")
	}
	due()
	if got, code := projectsAt(""); code != 200 || !slices.Equal(got, mine) {
		t.Fatalf("back on the first replica after the other renewed the token: %d %v, want %v", code, got, mine)
	}

	// A process with another key cannot open it: sign in again.
	conf := w.oauthConf
	conf.Keyring = newKeyring(t)
	stranger := w.replica(t, conf)
	due()
	if resp, _ := b.page(stranger.URL + "/pipelines"); resp.Request.URL.Path != "/signin" {
		t.Errorf("a process with another key still shows %s", resp.Request.URL)
	}

	// No code, token, client secret or password in the clear: not in the
	// database's files, the log or an answer.
	db, _ := os.ReadFile(w.dbPath)
	wal, _ := os.ReadFile(w.dbPath + "-wal")
	secrets := append(w.sim.OAuthSecrets(), "labtrail-secret", "pw-"+w.user)
	if len(secrets) < 7 { // a code, two access and two refresh tokens, the client secret, the password
		t.Fatalf("the simulator issued %d secrets", len(secrets))
	}
	for _, secret := range secrets {
		for where, b := range map[string][]byte{"the database": db, "the WAL": wal, "the log": w.logs.Bytes(), "the answers": []byte(w.seen.String())} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("a secret of the sign-in is in %s", where)
			}
		}
	}
}

func newKey(t *testing.T) auth.Key {
	t.Helper()
	text, err := auth.NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSignInWithGitLabAfterRotate: labtrail secrets rotate re-seals a
// signed-in session's GitLab token under the new key, so that after a
// restart with the new key alone the person is still signed in: their
// projects are read again with the token, which GitLab then renews and
// labtrail seals under the new key. No row keeps a value under the old
// key, and a process with the old key alone no longer opens it.
func TestSignInWithGitLabAfterRotate(t *testing.T) {
	w := newGitLabWorld(t)
	ctx := context.Background()
	oldKey, newK := newKey(t), newKey(t)
	w.oauthConf.Keyring = auth.NewKeyring(oldKey)
	w.enable(t)
	b := w.browser(t)
	if resp, _ := b.signIn(w.user, "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	h := auth.HashToken(b.cookieAt(auth.SessionCookie))
	se, err := w.st.SessionByHash(ctx, h)
	if err != nil || se.OAuthToken.KeyID != oldKey.ID {
		t.Fatalf("the stored session's token: key %q, %v", se.OAuthToken.KeyID, err)
	}
	r, err := auth.NewKeyring(newK, oldKey).Rotate(ctx, w.st, time.Now())
	if err != nil || r != (auth.Rotation{Sessions: 1}) {
		t.Fatalf("rotate: %+v %v", r, err)
	}
	keyIDs := func() []string {
		rows, err := w.st.DB().QueryContext(ctx, `SELECT token_key FROM sessions`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	if ids := keyIDs(); !slices.Equal(ids, []string{newK.ID}) {
		t.Fatalf("the sessions' key ids after rotation: %v, want %s", ids, newK.ID)
	}
	due := func() {
		t.Helper()
		if err := w.st.SetSessionProjects(ctx, h, se.Projects, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	projectsAt := func(base string) ([]string, int) {
		var ps struct{ Projects []store.Project }
		code := b.api(base+"/api/v1/projects", &ps)
		return projectPaths(ps.Projects), code
	}

	// A restart with the new key alone: the list is read again with the
	// re-sealed token, and GitLab's change is seen.
	w.oauthConf.Keyring = auth.NewKeyring(newK)
	w.enable(t)
	w.sim.SetMembership(w.user, w.projects[0].ID, w.projects[1].ID, w.projects[2].ID)
	mine := projectPaths([]store.Project{w.projects[0], w.projects[1], w.projects[2]})
	due()
	if got, code := projectsAt(""); code != 200 || !slices.Equal(got, mine) {
		t.Fatalf("after rotation and a restart with the new key: %d %v, want %v", code, got, mine)
	}
	// GitLab expires the token: the refresh token sealed before the
	// rotation renews it, and the renewed one is sealed under the new key.
	w.sim.ExpireOAuthTokens()
	due()
	if got, code := projectsAt(""); code != 200 || !slices.Equal(got, mine) {
		t.Fatalf("renewed after rotation: %d %v, want %v", code, got, mine)
	}
	renewed, err := w.st.SessionByHash(ctx, h)
	if err != nil || renewed.OAuthToken.KeyID != newK.ID {
		t.Fatalf("the renewed token: key %q, %v", renewed.OAuthToken.KeyID, err)
	}
	if ids := keyIDs(); !slices.Equal(ids, []string{newK.ID}) {
		t.Fatalf("the sessions' key ids after renewal: %v, want %s", ids, newK.ID)
	}

	// A process with the old key alone cannot open it: sign in again.
	conf := w.oauthConf
	conf.Keyring = auth.NewKeyring(oldKey)
	stale := w.replica(t, conf)
	due()
	if resp, _ := b.page(stale.URL + "/pipelines"); resp.Request.URL.Path != "/signin" {
		t.Errorf("a process with the old key still shows %s", resp.Request.URL)
	}
}
