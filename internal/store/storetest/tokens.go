package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/labtrail/labtrail/internal/store"
)

// The API tokens and the admin audit trail (issue 14), held for every
// backend.
var tokenTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"Tokens", func(t *testing.T, s store.Store) { testTokens(t, s) }},
	{"AdminAudit", func(t *testing.T, s store.Store) { testAdminAudit(t, s) }},
	{"Sessions", testSessions},
	{"OAuthSessions", testOAuthSessions},
	{"OAuthSessionToken", testOAuthSessionToken},
}

// RunTokens runs the tests of the API tokens and the admin audit trail
// on a backend that keeps them without the rest of store.Store (DynamoDB),
// so the tokens the server makes open the Lambda's API too. open is as
// for Run.
func RunTokens(t *testing.T, open func(t *testing.T) store.TokenStore) {
	t.Run("Tokens", func(t *testing.T) { testTokens(t, open(t)) })
	t.Run("AdminAudit", func(t *testing.T) { testAdminAudit(t, open(t)) })
}

// testOAuthSessions: a session signed in with GitLab keeps its user, the
// projects it may see (none is not every one) and when to read them again.
func testOAuthSessions(t *testing.T, s store.Store) {
	h := func(v string) []byte { x := sha256.Sum256([]byte(v)); return x[:] }
	for _, c := range []struct {
		name     string
		projects []int64
	}{{"some", []int64{3, 1, 7}}, {"none", []int64{}}, {"every", nil}} {
		se := store.Session{IDHash: h(c.name), Kind: "oauth", UserID: 42, Name: "alice", Scope: "read", CSRF: "c",
			CreatedAt: at(0), ExpiresAt: at(100), Projects: c.projects, ProjectsUntil: at(10)}
		if err := s.CreateSession(ctx(t), se); err != nil {
			t.Fatal(err)
		}
		got, err := s.SessionByHash(ctx(t), h(c.name))
		if err != nil || got.Kind != "oauth" || got.UserID != 42 || got.Name != "alice" || got.TokenID != 0 ||
			!got.ProjectsUntil.Equal(at(10)) || (got.Projects == nil) != (c.projects == nil) || !slices.Equal(got.Projects, c.projects) {
			t.Fatalf("%s: %+v %v", c.name, got, err)
		}
	}
	if err := s.SetSessionProjects(ctx(t), h("some"), []int64{9}, at(20)); err != nil {
		t.Fatal(err)
	}
	got, err := s.SessionByHash(ctx(t), h("some"))
	if err != nil || !slices.Equal(got.Projects, []int64{9}) || !got.ProjectsUntil.Equal(at(20)) {
		t.Fatalf("after SetSessionProjects: %+v %v", got, err)
	}
	if err := s.SetSessionProjects(ctx(t), h("some"), []int64{}, at(30)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionByHash(ctx(t), h("some")); err != nil || got.Projects == nil || len(got.Projects) != 0 {
		t.Fatalf("no projects left: %+v %v", got, err)
	}
	if err := s.SetSessionProjects(ctx(t), h("unknown"), []int64{1}, at(20)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown session: %v", err)
	}
	// A token session keeps its kind by default and sees every project.
	tok, err := s.CreateToken(ctx(t), store.Token{Name: "tok", Scope: "read", Hash: h("tok"), CreatedAt: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx(t), store.Session{IDHash: h("token"), TokenID: tok.ID, Name: "tok", Scope: "read", CSRF: "c",
		CreatedAt: at(0), ExpiresAt: at(100)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionByHash(ctx(t), h("token")); err != nil || got.Kind != "token" || got.Projects != nil || !got.ProjectsUntil.IsZero() {
		t.Fatalf("a token session: %+v %v", got, err)
	}
}

func testSessions(t *testing.T, s store.Store) {
	h := func(v string) []byte { x := sha256.Sum256([]byte(v)); return x[:] }
	tok, err := s.CreateToken(ctx(t), store.Token{Name: "me", Scope: "read", Hash: h("tok"), CreatedAt: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.TokenByID(ctx(t), tok.ID); err != nil || got.Name != "me" {
		t.Fatalf("token by id: %+v %v", got, err)
	}
	if _, err := s.TokenByID(ctx(t), tok.ID+100); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown token id: %v", err)
	}
	old := store.Session{IDHash: h("old"), TokenID: tok.ID, Name: "me", Scope: "read", CSRF: "c0", CreatedAt: at(0), ExpiresAt: at(10)}
	cur := store.Session{IDHash: h("cur"), TokenID: tok.ID, Name: "me", Scope: "read", CSRF: "c1", CreatedAt: at(5), ExpiresAt: at(100)}
	for _, se := range []store.Session{old, cur} {
		if err := s.CreateSession(ctx(t), se); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.SessionByHash(ctx(t), h("cur"))
	if err != nil || got.TokenID != tok.ID || got.CSRF != "c1" || !got.ExpiresAt.Equal(at(100)) || !got.CreatedAt.Equal(at(5)) {
		t.Fatalf("session: %+v %v", got, err)
	}
	// A new session drops the sessions expired by its start.
	if err := s.CreateSession(ctx(t), store.Session{IDHash: h("new"), TokenID: tok.ID, Name: "me", Scope: "read", CSRF: "c2",
		CreatedAt: at(20), ExpiresAt: at(200)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByHash(ctx(t), h("old")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired session is kept: %v", err)
	}
	if err := s.DeleteSession(ctx(t), h("cur"), at(21)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByHash(ctx(t), h("cur")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted session: %v", err)
	}
	if _, err := s.SessionByHash(ctx(t), h("new")); err != nil {
		t.Errorf("another session went with it: %v", err)
	}
}

func testTokens(t *testing.T, s store.TokenStore) {
	h := func(v string) []byte { x := sha256.Sum256([]byte(v)); return x[:] }
	exp := at(60 * 24 * 90)
	a, err := s.CreateToken(ctx(t), store.Token{Name: "ci", Scope: "deploy", Hash: h("one"), CreatedAt: at(0), ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Name != "ci" || a.Scope != "deploy" || !a.CreatedAt.Equal(at(0)) || !a.ExpiresAt.Equal(exp) ||
		!a.LastUsedAt.IsZero() || !a.RevokedAt.IsZero() || !bytes.Equal(a.Hash, h("one")) {
		t.Fatalf("created %+v", a)
	}
	if _, err := s.CreateToken(ctx(t), store.Token{Name: "ci", Scope: "read", Hash: h("two"), CreatedAt: at(1)}); !errors.Is(err, store.ErrTokenExists) {
		t.Fatalf("a second token named ci: %v", err)
	}
	b, err := s.CreateToken(ctx(t), store.Token{Name: "42", Scope: "admin", Hash: h("three"), CreatedAt: at(2)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenByHash(ctx(t), h("three"))
	if err != nil || got.ID != b.ID || !got.ExpiresAt.IsZero() {
		t.Fatalf("by hash: %+v %v", got, err)
	}
	if _, err := s.TokenByHash(ctx(t), h("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown hash: %v", err)
	}
	if err := s.TouchToken(ctx(t), a.ID, at(5)); err != nil {
		t.Fatal(err)
	}
	// A name that is a number names that token, before the token of
	// that id.
	r, err := s.RevokeToken(ctx(t), "42", at(6))
	if err != nil || r.ID != b.ID || !r.RevokedAt.Equal(at(6)) {
		t.Fatalf("revoke 42: %+v %v", r, err)
	}
	if _, err := s.RevokeToken(ctx(t), "nope", at(7)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke an unknown token: %v", err)
	}
	all, err := s.Tokens(ctx(t))
	if err != nil || len(all) != 2 || all[0].Name != "ci" || !all[0].LastUsedAt.Equal(at(5)) || all[1].RevokedAt.IsZero() {
		t.Fatalf("tokens: %+v %v", all, err)
	}
	// Revoking again keeps the first revocation's time.
	if r, err := s.RevokeToken(ctx(t), "42", at(9)); err != nil || !r.RevokedAt.Equal(at(6)) {
		t.Fatalf("revoke twice: %+v %v", r, err)
	}
}

func testAdminAudit(t *testing.T, s store.TokenStore) {
	for i, a := range []store.AdminAction{
		{Time: at(1), Actor: "cli", Action: "token.create", Target: "ci", OK: true},
		{Time: at(2), Actor: "ci", Action: "delivery.replay", Target: "7", Remote: "10.0.0.1", OK: false, Detail: "rate limited"},
		{Time: at(3), Actor: "root", Action: "webhook.test", OK: true},
	} {
		if err := s.AppendAdminAction(ctx(t), a); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	got, err := s.AdminActions(ctx(t), 0, 2)
	if err != nil || len(got) != 2 || got[0].Action != "webhook.test" || got[1].Action != "delivery.replay" ||
		got[1].OK || got[1].Remote != "10.0.0.1" || !got[1].Time.Equal(at(2)) || got[1].Detail != "rate limited" {
		t.Fatalf("newest two: %+v %v", got, err)
	}
	older, err := s.AdminActions(ctx(t), got[1].ID, 10)
	if err != nil || len(older) != 1 || older[0].Action != "token.create" || !older[0].OK {
		t.Fatalf("older: %+v %v", older, err)
	}
}

// testOAuthSessionToken: a session keeps its sealed GitLab token as
// given, replaced by SetSessionToken; a session without one has none.
func testOAuthSessionToken(t *testing.T, s store.Store) {
	h := func(v string) []byte { x := sha256.Sum256([]byte(v)); return x[:] }
	sealed := store.Sealed{KeyID: "0123456789abcdef", Data: []byte{0, 1, 2, 0xff, 'x'}}
	for _, c := range []struct {
		name string
		tok  store.Sealed
	}{{"sealed", sealed}, {"memory", store.Sealed{}}} {
		if err := s.CreateSession(ctx(t), store.Session{IDHash: h(c.name), Kind: "oauth", UserID: 42, Name: "alice", Scope: "read",
			CSRF: "c", CreatedAt: at(0), ExpiresAt: at(100), Projects: []int64{1}, ProjectsUntil: at(10), OAuthToken: c.tok}); err != nil {
			t.Fatal(err)
		}
		got, err := s.SessionByHash(ctx(t), h(c.name))
		if err != nil || !reflect.DeepEqual(got.OAuthToken, c.tok) {
			t.Fatalf("%s: token %+v, want %+v (%v)", c.name, got.OAuthToken, c.tok, err)
		}
	}
	renewed := store.Sealed{KeyID: "fedcba9876543210", Data: []byte("renewed")}
	if err := s.SetSessionToken(ctx(t), h("memory"), renewed); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionByHash(ctx(t), h("memory")); err != nil || !reflect.DeepEqual(got.OAuthToken, renewed) {
		t.Fatalf("after SetSessionToken: %+v %v", got.OAuthToken, err)
	}
	if got, err := s.SessionByHash(ctx(t), h("sealed")); err != nil || !reflect.DeepEqual(got.OAuthToken, sealed) {
		t.Fatalf("another session's token changed: %+v %v", got.OAuthToken, err)
	}
	if err := s.SetSessionToken(ctx(t), h("unknown"), renewed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown session: %v", err)
	}
}
