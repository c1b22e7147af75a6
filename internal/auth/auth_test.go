package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

func TestScopes(t *testing.T) {
	for _, c := range []struct {
		have, need auth.Scope
		ok         bool
	}{
		{auth.ScopeRead, auth.ScopeRead, true}, {auth.ScopeRead, auth.ScopeDeploy, false}, {auth.ScopeRead, auth.ScopeAdmin, false},
		{auth.ScopeDeploy, auth.ScopeRead, false}, {auth.ScopeDeploy, auth.ScopeDeploy, true},
		{auth.ScopeAdmin, auth.ScopeRead, true}, {auth.ScopeAdmin, auth.ScopeDeploy, true}, {auth.ScopeAdmin, auth.ScopeAdmin, true},
		{auth.ScopeNone, auth.ScopeNone, true}, {auth.ScopeNone, auth.ScopeRead, false},
	} {
		if got := c.have.Allows(c.need); got != c.ok {
			t.Errorf("%s allows %s: %v, want %v", c.have, c.need, got, c.ok)
		}
	}
	for _, n := range []string{"read", "deploy", "admin"} {
		if s, err := auth.ParseScope(n); err != nil || s.String() != n {
			t.Errorf("ParseScope(%q) = %v, %v", n, s, err)
		}
	}
	for _, n := range []string{"", "none", "Admin", "write"} {
		if _, err := auth.ParseScope(n); err == nil {
			t.Errorf("ParseScope(%q) accepted", n)
		}
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ts := auth.NewTokens(st)
	a, _ := auth.NewToken()
	b, _ := auth.NewToken()
	if a == b || !strings.HasPrefix(a, "lt_") || len(a) != 3+43 {
		t.Fatalf("tokens %q and %q", a, b)
	}
	raw, rec, err := ts.Create(ctx, "ci", auth.ScopeDeploy, time.Hour)
	if err != nil || rec.ExpiresAt.IsZero() {
		t.Fatalf("create: %+v %v", rec, err)
	}
	p, err := ts.Verify(ctx, raw)
	if err != nil || p.Name != "ci" || p.Scope != auth.ScopeDeploy || p.TokenID != rec.ID || p.Kind != "token" {
		t.Fatalf("verify: %+v %v", p, err)
	}
	if got, _ := st.Tokens(ctx); got[0].LastUsedAt.IsZero() {
		t.Error("a use is not recorded")
	}
	for _, bad := range []string{"", "glpat-123", "lt_", raw + "x", strings.ToUpper(raw)} {
		if _, err := ts.Verify(ctx, bad); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("verify %q: %v", bad, err)
		}
	}
	if _, err := st.RevokeToken(ctx, "ci", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Verify(ctx, raw); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "revoked") || strings.Contains(err.Error(), raw) {
		t.Errorf("a revoked token: %v", err)
	}
	if _, _, err := ts.Create(ctx, "ci", auth.ScopeRead, 0); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a second ci: %v", err)
	}
	for _, c := range []struct {
		name  string
		scope auth.Scope
		ttl   time.Duration
	}{{"", auth.ScopeRead, 0}, {strings.Repeat("x", 101), auth.ScopeRead, 0}, {"x", auth.ScopeNone, 0}, {"x", auth.ScopeRead, -time.Hour}} {
		if _, _, err := ts.Create(ctx, c.name, c.scope, c.ttl); err == nil {
			t.Errorf("create %q %s %v accepted", c.name, c.scope, c.ttl)
		}
	}
}
