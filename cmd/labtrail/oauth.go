package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/server"
)

// defaultOAuthTimeout bounds one request to GitLab while signing in when
// --http-timeout is not set.
const defaultOAuthTimeout = 30 * time.Second

// enableGitLabSignin lets people sign in with GitLab when labtrail's OAuth
// application is configured (docs/security.md).
func enableGitLabSignin(api *server.Server, sessions *auth.Sessions, c *config, log *slog.Logger) error {
	if c.OAuthClientID == "" && c.OAuthClientSecret == "" {
		if len(c.Admins) > 0 {
			log.Warn("LABTRAIL_ADMINS is set but signing in with GitLab is not (LABTRAIL_OAUTH_CLIENT_ID and LABTRAIL_OAUTH_CLIENT_SECRET): it does nothing")
		}
		return nil
	}
	if c.OAuthClientID == "" || c.OAuthClientSecret == "" {
		return errors.New("signing in with GitLab needs both LABTRAIL_OAUTH_CLIENT_ID and LABTRAIL_OAUTH_CLIENT_SECRET")
	}
	public, err := publicURL(c)
	if err != nil {
		return err
	}
	timeout := c.HTTPTimeout
	if timeout <= 0 {
		timeout = defaultOAuthTimeout
	}
	// With a secret key the users' GitLab tokens are sealed into the
	// store, so sessions survive a restart and move between replicas.
	ring, err := c.keyring()
	switch {
	case errors.Is(err, auth.ErrNoKey):
		ring = nil
		log.Info("GitLab sign-in tokens are kept in memory only (no LABTRAIL_SECRET_KEY): a GitLab session ends at a restart, or on another replica, when its projects are next read")
	case err != nil:
		return err
	default:
		log.Info("GitLab sign-in tokens are kept sealed in the store (LABTRAIL_SECRET_KEY): GitLab sessions survive a restart and move between replicas", "key_id", ring.CurrentID())
	}
	g, err := auth.NewGitLabOAuth(auth.OAuthConfig{GitLabURL: c.GitLabURL, ClientID: c.OAuthClientID, ClientSecret: c.OAuthClientSecret,
		RedirectURL: public + "/auth/gitlab/callback", Admins: c.Admins, HTTPClient: &http.Client{Timeout: timeout}, Keyring: ring}, sessions)
	if err != nil {
		return err
	}
	api.EnableGitLabSignin(g)
	log.Info("signing in with GitLab is on", "gitlab", c.GitLabURL, "redirect_uri", public+"/auth/gitlab/callback", "admins", len(c.Admins))
	return nil
}

// publicURL is labtrail's address as browsers reach it: LABTRAIL_PUBLIC_URL,
// else LABTRAIL_WEBHOOK_URL's scheme and host, else http:// and a loopback
// --addr (the demo's case).
func publicURL(c *config) (string, error) {
	if c.PublicURL != "" {
		return c.PublicURL, nil
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host, nil
		}
	}
	if loopback(c.Addr) {
		host, port, err := net.SplitHostPort(c.Addr)
		if err == nil {
			return "http://" + net.JoinHostPort(strings.Trim(host, "[]"), port), nil
		}
	}
	return "", errors.New("signing in with GitLab needs LABTRAIL_PUBLIC_URL, labtrail's address as browsers reach it (e.g. https://labtrail.example.com)")
}
