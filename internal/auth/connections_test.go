package auth_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
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

// TestRotate re-seals every stored secret under a new key: afterwards
// the old key is not needed, and the raw rows never held the plaintext.
func TestRotate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
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
	rawHas := func(plain string) bool {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT name, url, token_key, token_sealed, secret_key, secret_sealed FROM connections`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var a, b, c, e string
			var d, f []byte
			if err := rows.Scan(&a, &b, &c, &d, &e, &f); err != nil {
				t.Fatal(err)
			}
			for _, v := range [][]byte{[]byte(a), []byte(b), []byte(c), d, []byte(e), f} {
				if bytes.Contains(v, []byte(plain)) {
					return true
				}
			}
		}
		return false
	}
	for _, s := range secrets {
		for _, v := range s {
			if v != "" && rawHas(v) {
				t.Errorf("a raw row holds a secret in the clear")
			}
		}
	}
	// Without the old key, nothing is rotated and nothing written.
	newOnly, _ := newRing(t)
	if _, err := newOnly.Rotate(ctx, st, time.Now()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("rotating without the old key: %v", err)
	}
	ring, newKey := newRing(t, oldKey)
	n, err := ring.Rotate(ctx, st, time.Now())
	if err != nil || n != 2 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	if n, err := ring.Rotate(ctx, st, time.Now()); err != nil || n != 0 {
		t.Errorf("a second rotation: %d %v", n, err)
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
	for _, s := range secrets {
		if rawHas(s[0]) {
			t.Error("a raw row holds a token in the clear after rotation")
		}
	}

}
