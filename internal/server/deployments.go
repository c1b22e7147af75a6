package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// maxReportBytes bounds a deployment report's body: a report is a few
// hundred bytes.
const maxReportBytes = 64 << 10

// DeploymentReported is told of each reported deployment once it is
// stored: the report as checked and the stored deployment event. An error
// fails the request (the report is stored; the reporter may send it again).
type DeploymentReported func(ctx context.Context, r change.DeploymentReport, deployment change.Event) error

// OnDeploymentReported sets what is told of reported deployments (the
// environment URL callback queues its job there).
func (s *Server) OnDeploymentReported(fn DeploymentReported) { s.reported = fn }

// linkedEvent is a deployment linked to the one shown: the same
// deployment as the other source knows it.
type linkedEvent struct {
	ID     string        `json:"id"`
	Source change.Source `json:"source"`
	State  string        `json:"state"`
	WebURL string        `json:"web_url"`
}

// deploymentView is a deployment with its timeline and the deployments
// linked to it: its sources are its own and theirs.
type deploymentView struct {
	change.Recorded
	Sources []change.Source `json:"sources"`
	Linked  []linkedEvent   `json:"linked"`
}

// withLinks is ev as the API shows it: a deployment with what it is
// linked to, when the store knows links.
func (s *Server) withLinks(ctx context.Context, ev change.Event, tl []change.TimelineEntry) (any, error) {
	plain := change.NewRecorded(ev, tl)
	ls, ok := s.linked()
	if ev.Kind != change.KindDeployment || !ok {
		return plain, nil
	}
	linked, err := ls.LinkedDeployments(ctx, ev.ID)
	if err != nil {
		return nil, err
	}
	v := deploymentView{Recorded: plain, Sources: linkedSources(ev, linked), Linked: []linkedEvent{}}
	for _, l := range linked {
		l.SafeURLs("")
		v.Linked = append(v.Linked, linkedEvent{ID: l.ID, Source: l.Source, State: l.State, WebURL: l.WebURL})
	}
	return v, nil
}

// linkedSources are the sources of deployment ev and of those linked to
// it, ev's first, each once.
func linkedSources(ev change.Event, linked []change.Event) []change.Source {
	sources := []change.Source{ev.Source}
	for _, l := range linked {
		if !slices.Contains(sources, l.Source) {
			sources = append(sources, l.Source)
		}
	}
	return sources
}

// reportDeployment is POST /api/v1/deployments: a deployment reported by
// a CI job or a deploy tool, stored as a deployment event (source api)
// and its environment's. 201 for a new one, 200 for one stored before.
func (s *Server) reportDeployment(w http.ResponseWriter, r *http.Request) {
	rep, err := decodeReport(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	ps, err := s.store.Projects(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// s.store lists only the projects the caller may see (visibility.go).
	ids, err := idsOf(ps, []string{string(rep.Project)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var p store.Project
	for _, x := range ps {
		if x.ID == ids[0] {
			p = x
		}
	}
	dep, env := rep.Events(p.ID, p.Path, time.Now())
	res, err := s.store.Upsert(ctx, dep)
	if err == nil {
		_, err = s.store.Upsert(ctx, env)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.reported != nil {
		if err := s.reported(ctx, rep, dep); err != nil {
			s.log.Error("reported deployment stored; telling of it failed", "id", dep.ID, "err", err)
			writeError(w, http.StatusServiceUnavailable, "the deployment is stored, but its environment URL callback could not be queued; report it again")
			return
		}
	}
	stored, tl, err := s.store.Get(ctx, dep.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.withLinks(ctx, stored, tl)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Inserted > 0 {
		status = http.StatusCreated
	}
	writeJSON(w, status, v)
}

// decodeReport reads and checks a report; its errors name the field.
func decodeReport(w http.ResponseWriter, r *http.Request) (change.DeploymentReport, error) {
	var rep change.DeploymentReport
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return rep, &apiError{http.StatusUnsupportedMediaType, "send the report as application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReportBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		var (
			typeErr *json.UnmarshalTypeError
			syntax  *json.SyntaxError
			tooBig  *http.MaxBytesError
		)
		switch {
		case errors.As(err, &tooBig):
			return rep, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the report is larger than %d bytes", maxReportBytes)}
		case errors.As(err, &typeErr):
			return rep, badRequest("%s: must be a JSON %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case errors.As(err, &syntax), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return rep, badRequest("the body is not a JSON object: %v", err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return rep, badRequest("%s: not a field of a deployment report", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		var te *time.ParseError
		if errors.As(err, &te) {
			return rep, badRequest("started_at or finished_at: must be an RFC 3339 time such as 2024-05-01T12:00:00Z, got %q", te.Value)
		}
		return rep, badRequest("%v", err)
	}
	if dec.More() {
		return rep, badRequest("the body holds more than one JSON value")
	}
	if err := rep.Check(); err != nil {
		return rep, badRequest("%v", err)
	}
	return rep, nil
}
