package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/store"
)

// Connections is what the admin API of GitLab connections drives and the
// per-connection webhook endpoint asks: whoever runs the server keeps the
// connections, seals their secrets and runs their pollers.
type Connections interface {
	// List returns every connection, the default one first. No secret
	// is in it: store.Connection has no JSON form for them.
	List(ctx context.Context) ([]ConnectionInfo, error)
	// Add checks, seals and stores spec, and starts its poller; an error
	// wrapping ErrBadConnection is the caller's fault (400),
	// store.ErrConnectionExists a conflict (409).
	Add(ctx context.Context, spec auth.ConnectionSpec) (store.Connection, error)
	// Remove removes the connection named (store.ErrNotFound when none).
	Remove(ctx context.Context, name string) error
	// Webhook returns the webhook endpoint of the connection named; ok
	// false when there is none, or it has no webhook secret.
	Webhook(name string) (h http.Handler, ok bool)
	// Projects returns the projects and sync state of the added
	// connection named (store.ErrNotFound when none).
	Projects(ctx context.Context, name string) (store.ProjectStore, error)
}

// connectionProjects is one connection's projects and sync states.
type connectionProjects struct {
	Name  string
	Store store.ProjectStore
}

// projectStores are the projects and sync states of the connection named,
// or with "" of every connection ctx's principal may see: the default's
// first, then the added ones' in the order Connections lists them. A
// principal who signed in with GitLab sees the default's only.
func (s *Server) projectStores(ctx context.Context, named string) ([]connectionProjects, error) {
	if named != "" {
		ps, err := s.projectStoreNamed(ctx, named)
		return []connectionProjects{{named, ps}}, err
	}
	out := []connectionProjects{{store.DefaultConnection, s.store}}
	if restricted(ctx) != nil || s.connections == nil {
		return out, nil
	}
	cs, err := s.connections.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.Name == store.DefaultConnection {
			continue
		}
		ps, err := s.connections.Projects(ctx, c.Name)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, connectionProjects{c.Name, ps})
	}
	return out, nil
}

// projectStoreNamed is the projects and sync state of the connection
// named ("": the default), as ctx's principal may see them.
func (s *Server) projectStoreNamed(ctx context.Context, name string) (store.ProjectStore, error) {
	if name == "" || name == store.DefaultConnection {
		return s.store, nil
	}
	if restricted(ctx) != nil {
		// Signed in with the default connection's GitLab: another
		// GitLab's projects are none of theirs, whatever their ids.
		return nil, &apiError{http.StatusNotFound, "no GitLab connection named " + strconv.Quote(name)}
	}
	if s.connections == nil {
		return nil, &apiError{http.StatusNotFound, "no GitLab connection named " + strconv.Quote(name) + " (connections need LABTRAIL_SECRET_KEY)"}
	}
	ps, err := s.connections.Projects(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &apiError{http.StatusNotFound, "no GitLab connection named " + strconv.Quote(name)}
	}
	return ps, err
}

// ErrBadConnection marks Connections.Add's errors that are the request's
// fault.
var ErrBadConnection = errors.New("bad connection")

// ConnectionInfo is one connection as the admin API lists it.
type ConnectionInfo struct {
	store.Connection
	// Source is "environment" for the default connection (GITLAB_URL,
	// GITLAB_TOKEN), "store" for one added.
	Source string `json:"source"`
	// Webhook is its webhook endpoint's path, when it has a secret.
	Webhook string `json:"webhook,omitempty"`
	// Sync is how its polling goes.
	Sync ConnectionSync `json:"sync"`
}

// ConnectionSync sums up a connection's projects and sync states.
type ConnectionSync struct {
	Projects int `json:"projects"` // stored, active or not
	// LastSuccess is the latest successful sync of any of its projects'
	// kinds; nil before the first.
	LastSuccess *time.Time `json:"last_success_at"`
	// Failing counts the (project, kind) states whose last run failed.
	Failing int `json:"failing"`
}

// SummarizeSync reads ps's projects and sync states into a ConnectionSync.
func SummarizeSync(ctx context.Context, ps store.ProjectStore) (ConnectionSync, error) {
	var out ConnectionSync
	projects, err := ps.Projects(ctx)
	if err != nil {
		return out, err
	}
	states, err := ps.SyncStates(ctx)
	if err != nil {
		return out, err
	}
	out.Projects = len(projects)
	for _, st := range states {
		if st.LastError != "" {
			out.Failing++
		}
		if !st.LastSuccess.IsZero() && (out.LastSuccess == nil || st.LastSuccess.After(*out.LastSuccess)) {
			at := st.LastSuccess
			out.LastSuccess = &at
		}
	}
	return out, nil
}

// EnableConnections turns on the admin API of GitLab connections and
// their webhook endpoints.
func (s *Server) EnableConnections(c Connections) { s.connections = c }

func (s *Server) connectionsOff(w http.ResponseWriter) bool {
	if s.connections == nil {
		writeError(w, http.StatusServiceUnavailable, "connections are not set up on this server (they need LABTRAIL_SECRET_KEY)")
		return true
	}
	return false
}

func (s *Server) receiveConnectionWebhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("connection")
	if name == store.DefaultConnection {
		s.receiveWebhook(w, r)
		return
	}
	var h http.Handler
	ok := false
	if s.connections != nil {
		h, ok = s.connections.Webhook(name)
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no GitLab connection of that name receives webhooks here")
		return
	}
	s.extendDeadlines(w)
	h.ServeHTTP(w, r)
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) {
	if s.connectionsOff(w) {
		return
	}
	cs, err := s.connections.List(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": cs})
}

func (s *Server) addConnection(w http.ResponseWriter, r *http.Request) {
	if s.connectionsOff(w) {
		return
	}
	var spec auth.ConnectionSpec
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "send the connection as application/json")
		return
	}
	if err := dec.Decode(&spec); err != nil {
		// The decoder's message may quote the body, secrets and all.
		writeError(w, http.StatusBadRequest, "the body is not a connection: a JSON object with name, url, token and optionally webhook_secret, repos, groups, max_projects, include_archived, requests_per_minute")
		return
	}
	r.SetPathValue("id", spec.Name) // the admin audit's target
	c, err := s.connections.Add(r.Context(), spec)
	switch {
	case errors.Is(err, store.ErrConnectionExists):
		writeError(w, http.StatusConflict, "a connection named "+spec.Name+" exists: remove it first")
		return
	case errors.Is(err, ErrBadConnection):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.log.Error("add connection", "connection", spec.Name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the connection could not be stored")
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) removeConnection(w http.ResponseWriter, r *http.Request) {
	if s.connectionsOff(w) {
		return
	}
	switch err := s.connections.Remove(r.Context(), r.PathValue("id")); {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no connection of that name (the default one is the environment's and is not removed here)")
	case err != nil:
		s.fail(w, r, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
