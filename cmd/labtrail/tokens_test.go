package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthOnByAddress(t *testing.T) {
	for _, c := range []struct {
		mode, addr string
		on         bool
	}{
		{"", "127.0.0.1:8080", false},
		{"", "127.1.2.3:8080", false},
		{"", "[::1]:8080", false},
		{"", "localhost:8080", false},
		{"", ":8080", true},
		{"", "0.0.0.0:8080", true},
		{"", "10.0.0.5:8080", true},
		{"", "labtrail.example:443", true},
		{"on", "127.0.0.1:8080", true},
		{"off", "0.0.0.0:8080", false},
	} {
		if got := authOn(c.mode, c.addr); got != c.on {
			t.Errorf("LABTRAIL_AUTH=%q on %s: on=%v, want %v", c.mode, c.addr, got, c.on)
		}
	}
}

// TestTokensCommand makes, lists and revokes a token as a user would.
func TestTokensCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	cmd := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "--db", db), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := cmd("tokens", "create", "--name", "ci", "--scope", "deploy", "--expires", "30d")
	tok := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tok, "lt_") || len(tok) < 40 || !strings.Contains(errs, "shown this once") {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	if code, _, errs := cmd("tokens", "create", "--name", "ci", "--scope", "read"); code != 1 || !strings.Contains(errs, "exists") {
		t.Errorf("a second ci: %d %q", code, errs)
	}
	if code, _, errs := cmd("tokens", "create", "--name", "x", "--scope", "root"); code != 2 || !strings.Contains(errs, "read, deploy or admin") {
		t.Errorf("a bad scope: %d %q", code, errs)
	}
	if code, _, errs := cmd("tokens", "create", "--name", "x", "--scope", "read", "--expires", "soon"); code != 2 || !strings.Contains(errs, "90d") {
		t.Errorf("a bad lifetime: %d %q", code, errs)
	}
	code, out, _ = cmd("tokens", "list")
	if code != 0 || !strings.Contains(out, "ci") || !strings.Contains(out, "deploy") || strings.Contains(out, tok[3:]) {
		t.Errorf("list: %d %q", code, out)
	}
	if code, out, _ := cmd("tokens", "revoke", "ci"); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: %d %q", code, out)
	}
	if code, _, errs := cmd("tokens", "revoke", "nope"); code != 1 || !strings.Contains(errs, "no token") {
		t.Errorf("revoke an unknown token: %d %q", code, errs)
	}
	if code, out, _ := cmd("tokens", "list"); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("list after revoke: %d %q", code, out)
	}
}
