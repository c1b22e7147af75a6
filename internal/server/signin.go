package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labtrail/labtrail/internal/auth"
)

func init() {
	pageTemplate("signin")
}

type signinData struct {
	Next, Error, TTL string
	GitLab           bool // signing in with GitLab is offered
}

// safeNext is where to go after signing in: a path of this site, never
// another site (//host, a scheme, a backslash).
func safeNext(v string) string {
	if v == "" || !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\\r\n") {
		return "/"
	}
	if u, err := url.Parse(v); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return v
}

// signinPage is GET /signin: the form that takes a token once.
func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	if s.sessions == nil {
		s.pageError(w, r, http.StatusNotFound, "signing in is not needed here: access control is off")
		return
	}
	s.render(w, r, "signin", s.signinForm(r.URL.Query().Get("next"), ""))
}

// signinForm is the sign-in page going on to next, with msg as its error.
func (s *Server) signinForm(next, msg string) page {
	return page{Title: "Sign in", Data: signinData{Next: safeNext(next), Error: msg, TTL: humanTTL(s), GitLab: s.oauth != nil}}
}

// signin is POST /signin: check the token, start a session, go on.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	if s.sessions == nil {
		s.pageError(w, r, http.StatusNotFound, "signing in is not needed here: access control is off")
		return
	}
	if !sameOrigin(r) {
		s.errorPage(w, http.StatusForbidden, "this form may only be sent from labtrail's own pages (the request's Origin names another site)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	next := safeNext(r.PostFormValue("next"))
	p, err := s.sessions.SignIn(r.Context(), w, strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		status, msg := http.StatusUnauthorized, "that token was not accepted: "+strings.TrimPrefix(err.Error(), auth.ErrInvalidToken.Error()+": ")
		if !errors.Is(err, auth.ErrInvalidToken) {
			s.log.Error("sign in failed", "err", err)
			status, msg = http.StatusServiceUnavailable, "signing in failed: the store is unavailable"
		}
		s.adminAction(r, nil, "signin.failed", false, msg)
		s.renderStatus(w, r, status, "signin", s.signinForm(next, msg))
		return
	}
	s.adminAction(r, p, "signin", true, "scope "+p.Scope.String())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signout is POST /signout: end the session (with its form token).
func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	if s.sessions == nil {
		s.pageError(w, r, http.StatusNotFound, "signing out is not needed here: access control is off")
		return
	}
	p, _ := s.sessions.Principal(r)
	if p != nil && !auth.CheckCSRF(p, r.PostFormValue("csrf")) {
		s.errorPage(w, http.StatusForbidden, "this form's token is missing or wrong: sign out from labtrail's own page")
		return
	}
	if err := s.sessions.SignOut(r.Context(), w, r); err != nil {
		s.log.Warn("sign out", "err", err)
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func humanTTL(s *Server) string {
	return humanDuration(ptrFloat(s.sessions.TTL.Seconds()))
}

func ptrFloat(f float64) *float64 { return &f }

// EnableGitLabSignin lets people sign in with GitLab (GET /auth/gitlab and
// its callback). It needs EnableSessions.
func (s *Server) EnableGitLabSignin(g *auth.GitLabOAuth) { s.oauth = g }

// gitlabSignin is GET /auth/gitlab: off to GitLab to sign in there.
func (s *Server) gitlabSignin(w http.ResponseWriter, r *http.Request) {
	if s.sessions == nil || s.oauth == nil {
		s.pageError(w, r, http.StatusNotFound, "signing in with GitLab is not set up here (LABTRAIL_OAUTH_CLIENT_ID, docs/security.md)")
		return
	}
	to, err := s.oauth.Start(w, safeNext(r.URL.Query().Get("next")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// gitlabCallback is GET /auth/gitlab/callback, where GitLab sends the
// browser back: finish the sign-in, start the session, go on.
func (s *Server) gitlabCallback(w http.ResponseWriter, r *http.Request) {
	if s.sessions == nil || s.oauth == nil {
		s.pageError(w, r, http.StatusNotFound, "signing in with GitLab is not set up here (LABTRAIL_OAUTH_CLIENT_ID, docs/security.md)")
		return
	}
	p, next, err := s.oauth.Finish(r.Context(), w, r)
	if err != nil {
		status, msg := http.StatusBadRequest, err.Error()
		if !errors.Is(err, auth.ErrSignInRefused) {
			s.log.Error("sign in with GitLab failed", "err", err)
			status, msg = http.StatusBadGateway, "signing in with GitLab failed: GitLab or the store could not be reached; try again"
		}
		s.adminAction(r, nil, "signin.failed", false, "GitLab: "+msg)
		s.renderStatus(w, r, status, "signin", s.signinForm(next, msg))
		return
	}
	detail := "GitLab, scope " + p.Scope.String()
	if p.Projects != nil {
		detail += fmt.Sprintf(", %d projects", len(p.Projects))
	}
	s.adminAction(r, p, "signin", true, detail)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}
