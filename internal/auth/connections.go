package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
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

// Rotation is what Rotate re-sealed and ended.
type Rotation struct {
	Connections int // connections with a secret re-sealed
	Secrets     int // their secrets re-sealed (tokens and webhook secrets)
	Sessions    int // sessions' GitLab tokens re-sealed
	// Ended are the sessions ended because their token did not open
	// under the keys given (altered, or sealed under a third key): their
	// users sign in again.
	Ended int
}

// String says what r re-sealed, as the command's output and the audit
// entry give it.
func (r Rotation) String() string {
	s := fmt.Sprintf("%s of %s and %s re-sealed", counted(r.Secrets, "secret"), counted(r.Connections, "connection"), counted(r.Sessions, "session token"))
	if r.Ended > 0 {
		s += fmt.Sprintf("; %s ended (their GitLab token did not open under the old key: they sign in again)", counted(r.Ended, "session"))
	}
	return s
}

// counted is count things, singular for one.
func counted(count int, thing string) string {
	if count == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", count, thing)
}

// Rotate re-seals, under k's current key, every secret sealed under
// another of k's keys: the connections' secrets and the GitLab tokens of
// dashboard sessions, all in one transaction, and says how many.
//
// A connection secret under a key k does not hold stops it before
// anything is written, as does a rotation whose old keys sealed none of
// the values to re-seal (the wrong old key given). A session's token
// that does not open (altered, or sealed under a third key, say by a
// process still running with a key older than the old one) does not stop
// it: that session ends, counted in Ended, and its user signs in again.
func (k *Keyring) Rotate(ctx context.Context, st store.SecretStore, now time.Time) (Rotation, error) {
	if k == nil {
		return Rotation{}, ErrNoKey
	}
	var r Rotation
	err := st.Reseal(ctx, func(in store.SealedSecrets) (store.Resealed, error) {
		r = Rotation{}
		var (
			out store.Resealed
			// pending are the values not under the current key, underOld
			// those of them under an older key k holds.
			pending, underOld int
			unknown           = map[string]bool{}
		)
		due := func(v store.Sealed) bool {
			if v.IsZero() || v.KeyID == k.CurrentID() {
				return false
			}
			pending++
			if _, ok := k.keys[v.KeyID]; ok {
				underOld++
			} else {
				unknown[v.KeyID] = true
			}
			return true
		}
		for _, c := range in.Connections {
			n := 0
			for _, v := range []store.Sealed{c.Token, c.WebhookSecret} {
				if due(v) {
					n++
				}
			}
			if n == 0 {
				continue
			}
			tok, sec, err := k.OpenConnection(c)
			if errors.Is(err, ErrUnknownKey) {
				return out, fmt.Errorf("%w: give the key it was sealed under as the old key", err)
			}
			if err != nil {
				return out, err
			}
			if err := k.SealConnection(&c, tok, sec); err != nil {
				return out, err
			}
			c.UpdatedAt = now
			out.Connections = append(out.Connections, c)
			r.Connections++
			r.Secrets += n
		}
		for _, se := range in.Sessions {
			if !due(se.Token) {
				continue
			}
			where := sessionTokenContext(se.IDHash)
			plain, err := k.Open(se.Token, where)
			if err != nil {
				out.EndSessions = append(out.EndSessions, se.IDHash)
				continue
			}
			sealed, err := k.Seal(plain, where)
			if err != nil {
				return out, err
			}
			out.Sessions = append(out.Sessions, store.SessionToken{IDHash: se.IDHash, Token: sealed})
		}
		if pending > 0 && underOld == 0 {
			ids := make([]string, 0, len(unknown))
			for id := range unknown {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			return out, fmt.Errorf("%w: none of the %d values to re-seal is under the old key given (they are under %s): give the key they were sealed under as the old key",
				ErrUnknownKey, pending, strings.Join(ids, ", "))
		}
		r.Sessions, r.Ended = len(out.Sessions), len(out.EndSessions)
		return out, nil
	})
	if err != nil {
		return Rotation{}, err
	}
	return r, nil
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
