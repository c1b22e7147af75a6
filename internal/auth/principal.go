// Package auth decides who is asking: API tokens, dashboard sessions
// (signed in with a token or with GitLab), and the encryption of secrets
// kept at rest.
package auth

import (
	"context"
	"fmt"
)

// Scope is what a caller may do. Admin may do everything; read may make
// every GET of the API and the pages; deploy may only report deployments.
type Scope int

const (
	ScopeNone Scope = iota
	ScopeRead
	ScopeDeploy
	ScopeAdmin
)

var scopeNames = map[Scope]string{ScopeNone: "none", ScopeRead: "read", ScopeDeploy: "deploy", ScopeAdmin: "admin"}

func (s Scope) String() string {
	if n, ok := scopeNames[s]; ok {
		return n
	}
	return fmt.Sprintf("scope(%d)", int(s))
}

// ParseScope reads a scope's name: read, deploy or admin.
func ParseScope(name string) (Scope, error) {
	for s, n := range scopeNames {
		if n == name && s != ScopeNone {
			return s, nil
		}
	}
	return ScopeNone, fmt.Errorf("unknown scope %q: use read, deploy or admin", name)
}

// Allows reports whether a caller holding s may do what needs need.
func (s Scope) Allows(need Scope) bool {
	switch {
	case need == ScopeNone:
		return true
	case s == ScopeAdmin:
		return true
	default:
		return s == need
	}
}

// Principal is who a request comes from.
type Principal struct {
	// Kind is how the caller proved who they are: "token" (an API token
	// as a Bearer header), "session" (a dashboard session cookie) or
	// "open" (access control is off: every caller is admin).
	Kind string
	// Name names the caller in logs and the admin audit: a token's name,
	// a GitLab user's username.
	Name string
	// TokenID is the API token's id (Kind "token", or a session signed in
	// with a token); 0 otherwise.
	TokenID int64
	Scope   Scope
	// Projects, when not nil, are the only project ids the caller may
	// see (a GitLab user sees the projects they are a member of); nil
	// means every project.
	Projects map[int64]bool
	// CSRF is the form token of a session's pages (Kind "session"): a
	// form POST must carry it.
	CSRF string
}

// CanSee reports whether p may see project id.
func (p *Principal) CanSee(project int64) bool {
	return p == nil || p.Projects == nil || p.Projects[project]
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal ctx carries, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
