package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// A connection's secrets are sealed bound to its name and field, so a
// value copied onto another connection, or from token to webhook
// secret, does not open.
func tokenContext(name string) string  { return "connection/" + name + "/token" }
func secretContext(name string) string { return "connection/" + name + "/webhook_secret" }

// SealConnection seals token and webhook secret into c (for c.Name).
func (k *Keyring) SealConnection(c *store.Connection, token, webhookSecret string) error {
	var err error
	if c.Token, err = k.Seal(token, tokenContext(c.Name)); err != nil {
		return err
	}
	c.WebhookSecret, err = k.Seal(webhookSecret, secretContext(c.Name))
	return err
}

// OpenConnection returns c's token and webhook secret.
func (k *Keyring) OpenConnection(c store.Connection) (token, webhookSecret string, err error) {
	if token, err = k.Open(c.Token, tokenContext(c.Name)); err != nil {
		return "", "", fmt.Errorf("connection %q: token: %w", c.Name, err)
	}
	if webhookSecret, err = k.Open(c.WebhookSecret, secretContext(c.Name)); err != nil {
		return "", "", fmt.Errorf("connection %q: webhook secret: %w", c.Name, err)
	}
	return token, webhookSecret, nil
}

// Rotate re-seals, under k's current key, every connection secret sealed
// under another of k's keys, all in one transaction, and says how many
// connections it re-sealed. A value under a key k does not hold stops it
// before anything is written.
func (k *Keyring) Rotate(ctx context.Context, st store.ConnectionStore, now time.Time) (int, error) {
	if k == nil {
		return 0, ErrNoKey
	}
	cs, err := st.Connections(ctx)
	if err != nil {
		return 0, err
	}
	var changed []store.Connection
	for _, c := range cs {
		if (c.Token.IsZero() || c.Token.KeyID == k.CurrentID()) && (c.WebhookSecret.IsZero() || c.WebhookSecret.KeyID == k.CurrentID()) {
			continue
		}
		tok, sec, err := k.OpenConnection(c)
		if errors.Is(err, ErrUnknownKey) {
			return 0, fmt.Errorf("%w: give the key it was sealed under as the old key", err)
		}
		if err != nil {
			return 0, err
		}
		if err := k.SealConnection(&c, tok, sec); err != nil {
			return 0, err
		}
		c.UpdatedAt = now
		changed = append(changed, c)
	}
	return len(changed), st.UpdateConnections(ctx, changed...)
}

// ConnectionSpec is a connection as it is asked for (labtrail
// connections add, POST /api/v1/admin/connections): its secrets in the
// clear, for NewConnection to seal. It is never answered back.
type ConnectionSpec struct {
	Name              string   `json:"name"`
	URL               string   `json:"url"`
	Token             string   `json:"token"`
	WebhookSecret     string   `json:"webhook_secret"`
	Repos             []string `json:"repos"`
	Groups            []string `json:"groups"`
	MaxProjects       int      `json:"max_projects"`
	IncludeArchived   bool     `json:"include_archived"`
	RequestsPerMinute int      `json:"requests_per_minute"`
}

// Defaults of a connection's selection and rate limit, as the default
// connection's settings have them.
const (
	DefaultMaxProjects       = 100
	DefaultRequestsPerMinute = 600
)

// NewConnection checks spec and returns the connection to store, its
// secrets sealed under k. Its errors say what is wrong and never quote a
// secret.
func (k *Keyring) NewConnection(spec ConnectionSpec, now time.Time) (store.Connection, error) {
	if err := store.ValidConnectionName(spec.Name); err != nil {
		return store.Connection{}, err
	}
	u, err := url.Parse(spec.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return store.Connection{}, errors.New("a connection's URL is GitLab's http(s) address, such as https://gitlab.example.com, without credentials")
	}
	switch {
	case strings.TrimSpace(spec.Token) == "":
		return store.Connection{}, errors.New("a connection needs GitLab's token (read_api scope)")
	case spec.MaxProjects < 0 || spec.RequestsPerMinute < 0:
		return store.Connection{}, errors.New("max_projects and requests_per_minute are positive (0: the default)")
	case len(spec.Token) > 1024 || len(spec.WebhookSecret) > 1024:
		return store.Connection{}, errors.New("a token or webhook secret is at most 1024 characters")
	}
	for _, v := range append(append([]string{}, spec.Repos...), spec.Groups...) {
		if strings.TrimSpace(v) == "" || strings.Contains(v, ",") {
			return store.Connection{}, errors.New("repos and groups are project or group paths or ids, none empty and none with a comma")
		}
	}
	c := store.Connection{Name: spec.Name, URL: strings.TrimRight(spec.URL, "/"), Repos: spec.Repos, Groups: spec.Groups,
		MaxProjects: spec.MaxProjects, IncludeArchived: spec.IncludeArchived, RequestsPerMinute: spec.RequestsPerMinute,
		CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	if c.MaxProjects == 0 {
		c.MaxProjects = DefaultMaxProjects
	}
	if c.RequestsPerMinute == 0 {
		c.RequestsPerMinute = DefaultRequestsPerMinute
	}
	return c, k.SealConnection(&c, strings.TrimSpace(spec.Token), strings.TrimSpace(spec.WebhookSecret))
}
