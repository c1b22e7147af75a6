package auth_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
	_ "modernc.org/sqlite"
)

func newRing(t *testing.T, older ...auth.Key) (*auth.Keyring, auth.Key) {
	t.Helper()
	text, err := auth.NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewKeyring(k, older...), k
}

func TestNewConnectionChecks(t *testing.T) {
	ring, _ := newRing(t)
	now := time.Now()
	ok := auth.ConnectionSpec{Name: "second", URL: "https://gitlab.example.org/", Token: "glpat-abc", WebhookSecret: "hook-secret"}
	c, err := ring.NewConnection(ok, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://gitlab.example.org" || c.MaxProjects != auth.DefaultMaxProjects || c.RequestsPerMinute != auth.DefaultRequestsPerMinute {
		t.Errorf("defaults: %+v", c)
	}
	tok, sec, err := ring.OpenConnection(c)
	if err != nil || tok != "glpat-abc" || sec != "hook-secret" {
		t.Fatalf("open: %q %q %v", tok, sec, err)
	}
	// The token sealed for one connection does not open as another's.
	moved := c
	moved.Name = "third"
	if _, _, err := ring.OpenConnection(moved); err == nil {
		t.Error("a connection's secrets opened under another name")
	}
	for name, spec := range map[string]auth.ConnectionSpec{
		"default name":     {Name: "default", URL: ok.URL, Token: "t"},
		"bad name":         {Name: "Second", URL: ok.URL, Token: "t"},
		"no token":         {Name: "second", URL: ok.URL},
		"ftp":              {Name: "second", URL: "ftp://x", Token: "t"},
		"no host":          {Name: "second", URL: "https://", Token: "t"},
		"credentials":      {Name: "second", URL: "https://u:p@x", Token: "t"},
		"negative":         {Name: "second", URL: ok.URL, Token: "t", MaxProjects: -1},
		"comma in repos":   {Name: "second", URL: ok.URL, Token: "t", Repos: []string{"a,b"}},
		"empty group":      {Name: "second", URL: ok.URL, Token: "t", Groups: []string{" "}},
		"oversized secret": {Name: "second", URL: ok.URL, Token: strings.Repeat("x", 2000)},
	} {
		if _, err := ring.NewConnection(spec, now); err == nil {
			t.Errorf("%s: accepted", name)
		} else if spec.Token != "" && len(spec.Token) > 3 && strings.Contains(err.Error(), spec.Token) {
			t.Errorf("%s: the error quotes the token", name)
		}
	}
}

// rotateBackend is a store TestRotate runs on, with the raw rows of its
// sealed columns: every text and byte column of connections and
// sessions, as the database holds them.
type rotateBackend struct {
	name string
	open func(t *testing.T) (store.Store, func() [][]byte)
}

var rotateBackends = []rotateBackend{
	{"sqlite", func(t *testing.T) (store.Store, func() [][]byte) {
		path := filepath.Join(t.TempDir(), "l.db")
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st, func() [][]byte {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var out [][]byte
			for _, q := range rawQueries {
				rows, err := db.Query(q)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					v := make([][]byte, 3)
					if err := rows.Scan(&v[0], &v[1], &v[2]); err != nil {
						t.Fatal(err)
					}
					out = append(out, v...)
				}
				rows.Close()
			}
			return out
		}
	}},
	{"postgres", func(t *testing.T) (store.Store, func() [][]byte) {
		st, err := postgres.Open(context.Background(), pgtest.SchemaURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st, func() [][]byte {
			var out [][]byte
			for _, q := range rawQueries {
				rows, err := st.Pool().Query(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var a, b string
					var c []byte
					if err := rows.Scan(&a, &b, &c); err != nil {
						t.Fatal(err)
					}
					out = append(out, []byte(a), []byte(b), c)
				}
				rows.Close()
				if rows.Err() != nil {
					t.Fatal(rows.Err())
				}
			}
			return out
		}
	}},
}

// rawQueries read every sealed column with its row's name, key id
// columns in the middle.
var rawQueries = []string{
	`SELECT name, token_key, token_sealed FROM connections`,
	`SELECT url, secret_key, secret_sealed FROM connections`,
	`SELECT name, token_key, token_sealed FROM sessions`,
}

// TestRotate re-seals every stored secret under a new key, the
// connections' and the GitLab tokens of signed-in sessions: afterwards
// the new key alone opens them, no row holds a value under the old key,
// and the raw rows never held the plaintext. A session whose token does
// not open under the old key ends, and is counted; the wrong old key, or
// none, is refused with nothing written.
func TestRotate(t *testing.T) {
	for _, b := range rotateBackends {
		t.Run(b.name, func(t *testing.T) { testRotate(t, b) })
	}
}

func testRotate(t *testing.T, b rotateBackend) {
	ctx := context.Background()
	st, raw := b.open(t)
	oldRing, oldKey := newRing(t)
	secrets := map[string][2]string{"one": {"glpat-token-one-xyz", "hook-secret-one"}, "two": {"glpat-token-two-xyz", ""}}
	for name, s := range secrets {
		c, err := oldRing.NewConnection(auth.ConnectionSpec{Name: name, URL: "https://" + name + ".example", Token: s[0], WebhookSecret: s[1]}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Sessions signed in with GitLab, their tokens sealed as a sign-in
	// seals them; one altered, one sealed under a third key (a process
	// still running with an older key), and an API token's session
	// holding none.
	h := func(v string) []byte { return auth.HashToken(v) }
	gitlabTokens := map[string]string{"alice": `{"access_token":"gloas-alice-access","refresh_token":"alice-refresh"}`,
		"bob": `{"access_token":"gloas-bob-access","refresh_token":"bob-refresh"}`}
	thirdRing, _ := newRing(t)
	now := time.Now().UTC()
	for _, name := range []string{"alice", "bob", "altered", "third", "api"} {
		se := store.Session{IDHash: h(name), Kind: "oauth", UserID: 1, Name: name, Scope: "read", CSRF: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		var err error
		switch name {
		case "alice", "bob":
			se.OAuthToken, err = oldRing.Seal(gitlabTokens[name], auth.SessionTokenContext(se.IDHash))
		case "altered":
			se.OAuthToken, err = oldRing.Seal(`{"access_token":"gloas-altered"}`, auth.SessionTokenContext(se.IDHash))
			se.OAuthToken.Data[len(se.OAuthToken.Data)-1] ^= 1
		case "third":
			se.OAuthToken, err = thirdRing.Seal(`{"access_token":"gloas-third"}`, auth.SessionTokenContext(se.IDHash))
		case "api":
			se.Kind, se.TokenID, se.UserID = "token", 9, 0
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	rawHas := func(v []byte) bool {
		for _, col := range raw() {
			if bytes.Contains(col, v) {
				return true
			}
		}
		return false
	}
	plaintexts := []string{"glpat-token-one-xyz", "hook-secret-one", "glpat-token-two-xyz", "gloas-alice-access", "alice-refresh", "gloas-bob-access"}
	for _, v := range plaintexts {
		if rawHas([]byte(v)) {
			t.Errorf("a raw row holds a secret in the clear")
		}
	}
	unchanged := func(what string, before [][]byte) {
		t.Helper()
		if after := raw(); !reflect.DeepEqual(after, before) {
			t.Fatalf("%s changed the rows", what)
		}
	}

	// Without the old key, nothing is rotated and nothing written.
	before := raw()
	newOnly, _ := newRing(t)
	if _, err := newOnly.Rotate(ctx, st, time.Now()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("rotating without the old key: %v", err)
	}
	unchanged("rotating without the old key", before)

	ring, newKey := newRing(t, oldKey)
	r, err := ring.Rotate(ctx, st, time.Now())
	if want := (auth.Rotation{Connections: 2, Secrets: 3, Sessions: 2, Ended: 2}); err != nil || r != want {
		t.Fatalf("rotate: %+v %v, want %+v", r, err, want)
	}
	if s := r.String(); !strings.Contains(s, "3 secrets of 2 connections and 2 session tokens re-sealed") || !strings.Contains(s, "2 sessions ended") {
		t.Errorf("the rotation says %q", s)
	}
	if r, err := ring.Rotate(ctx, st, time.Now()); err != nil || r != (auth.Rotation{}) {
		t.Errorf("a second rotation: %+v %v", r, err)
	}
	cs, err := st.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := auth.NewKeyring(newKey)
	for _, c := range cs {
		if c.Token.KeyID != newKey.ID || (!c.WebhookSecret.IsZero() && c.WebhookSecret.KeyID != newKey.ID) {
			t.Errorf("%s: key ids %s %s, want %s", c.Name, c.Token.KeyID, c.WebhookSecret.KeyID, newKey.ID)
		}
		tok, sec, err := after.OpenConnection(c)
		if err != nil || tok != secrets[c.Name][0] || sec != secrets[c.Name][1] {
			t.Errorf("%s after rotation: %v", c.Name, err)
		}
		if _, _, err := auth.NewKeyring(oldKey).OpenConnection(c); err == nil {
			t.Errorf("%s still opens under the old key", c.Name)
		}
	}
	// The signed-in sessions keep their GitLab tokens, which the new key
	// alone opens; the two that did not open are ended; the API token's
	// session is as it was.
	for name, plain := range gitlabTokens {
		se, err := st.SessionByHash(ctx, h(name))
		if err != nil {
			t.Fatalf("%s's session after rotation: %v", name, err)
		}
		if got, err := after.Open(se.OAuthToken, auth.SessionTokenContext(h(name))); err != nil || got != plain {
			t.Errorf("%s's token under the new key alone: %v", name, err)
		}
		if _, err := auth.NewKeyring(oldKey).Open(se.OAuthToken, auth.SessionTokenContext(h(name))); err == nil {
			t.Errorf("%s's token still opens under the old key", name)
		}
	}
	for _, name := range []string{"altered", "third"} {
		if _, err := st.SessionByHash(ctx, h(name)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the %s session after rotation: %v", name, err)
		}
	}
	if se, err := st.SessionByHash(ctx, h("api")); err != nil || !se.OAuthToken.IsZero() {
		t.Errorf("the API token's session after rotation: %+v %v", se, err)
	}
	for _, col := range raw() {
		if string(col) == oldKey.ID || bytes.Contains(col, []byte(oldKey.ID)) {
			t.Fatal("a raw row holds a value under the old key after rotation")
		}
	}
	for _, v := range plaintexts {
		if rawHas([]byte(v)) {
			t.Error("a raw row holds a secret in the clear after rotation")
		}
	}

	// Another rotation with the wrong old key is refused and writes
	// nothing: with connections (theirs do not open), and without (no
	// session token is under the old key given; none is ended).
	_, wrongKey := newRing(t)
	wrong, _ := newRing(t, wrongKey)
	before = raw()
	if _, err := wrong.Rotate(ctx, st, time.Now()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("rotating with the wrong old key: %v", err)
	}
	unchanged("rotating with the wrong old key", before)
	for name := range secrets {
		if err := st.RemoveConnection(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	before = raw()
	if _, err := wrong.Rotate(ctx, st, time.Now()); !errors.Is(err, auth.ErrUnknownKey) || !strings.Contains(err.Error(), newKey.ID) {
		t.Fatalf("rotating sessions only with the wrong old key: %v", err)
	}
	unchanged("rotating sessions only with the wrong old key", before)
	for name := range gitlabTokens {
		if se, err := st.SessionByHash(ctx, h(name)); err != nil || se.OAuthToken.KeyID != newKey.ID {
			t.Errorf("%s's session after a refused rotation: %v", name, err)
		}
	}
}
