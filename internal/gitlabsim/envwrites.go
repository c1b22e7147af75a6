package gitlabsim

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/labtrail/labtrail/internal/change"
)

// EnvironmentWrite is one write to the environments API the simulator
// answered: POST /projects/:id/environments or PUT
// /projects/:id/environments/:environment_id, for a test to read back.
type EnvironmentWrite struct {
	Method        string            // POST or PUT
	ProjectID     int64             // the project's id
	EnvironmentID int64             // the environment written (created or edited)
	Params        map[string]string // the parameters sent (name, external_url, tier, ...)
	Status        int               // the status answered
}

// envWrites records the environment writes.
type envWrites struct {
	mu  sync.Mutex
	log []EnvironmentWrite
}

// EnvironmentWrites returns the environment writes answered so far, oldest
// first.
func (s *Sim) EnvironmentWrites() []EnvironmentWrite {
	s.envWrites.mu.Lock()
	defer s.envWrites.mu.Unlock()
	return slices.Clone(s.envWrites.log)
}

func (s *Sim) recordEnvWrite(w EnvironmentWrite) {
	s.envWrites.mu.Lock()
	s.envWrites.log = append(s.envWrites.log, w)
	s.envWrites.mu.Unlock()
}

// matchEnvironmentWrite matches the environment routes that write.
func matchEnvironmentWrite(method string, segs []string) (route, []string) {
	n := len(segs)
	if n < 3 || segs[0] != "projects" || segs[2] != "environments" {
		return route{}, nil
	}
	r := func(t string, h func(*Sim, *call)) route { return route{t, h, false} }
	switch {
	case n == 3 && method == http.MethodPost:
		return r("/projects/:id/environments", (*Sim).createEnvironment), segs[1:2]
	case n == 4 && method == http.MethodPut:
		return r("/projects/:id/environments/:environment_id", (*Sim).editEnvironment), []string{segs[1], segs[3]}
	}
	return route{}, nil
}

// GitLab's rules for an environment's name and external URL.
var (
	envNameRE = regexp.MustCompile(`^[a-zA-Z0-9 \-_/.${}]+$`)
	tiers     = []string{"production", "staging", "testing", "development", "other"}
)

// checkEnvParams checks the parameters GitLab validates on a write: the
// answer to give (400, as GitLab's validation errors) or "".
func checkEnvParams(in map[string]string) map[string][]string {
	bad := map[string][]string{}
	if u, ok := in["external_url"]; ok && u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad["external_url"] = []string{"is blocked: Only allowed schemes are http, https"}
		}
	}
	if t, ok := in["tier"]; ok && !slices.Contains(tiers, t) {
		bad["tier"] = []string{"is not included in the list"}
	}
	return bad
}

// createEnvironment answers POST /projects/:id/environments: 201 with the
// new environment, 400 when the name is missing, invalid or taken.
func (s *Sim) createEnvironment(c *call) {
	pid := s.hookProject(c, true)
	if pid == 0 {
		return
	}
	in, err := hookParams(c)
	if err != nil {
		c.badRequest(err.Error())
		return
	}
	rec := EnvironmentWrite{Method: http.MethodPost, ProjectID: pid, Params: in}
	name := strings.TrimSpace(in["name"])
	if name == "" {
		rec.Status = http.StatusBadRequest
		s.recordEnvWrite(rec)
		c.badRequest("name is missing")
		return
	}
	bad := checkEnvParams(in)
	if !envNameRE.MatchString(name) {
		bad["name"] = []string{"can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', and spaces"}
	}
	s.mu.Lock()
	p := s.w.byID[pid]
	for _, e := range p.envs {
		if e.name == name {
			bad["name"] = []string{"has already been taken"}
		}
	}
	if len(bad) > 0 {
		s.mu.Unlock()
		rec.Status = http.StatusBadRequest
		s.recordEnvWrite(rec)
		writeJSON(c.w, http.StatusBadRequest, map[string]any{"message": bad})
		return
	}
	now := s.now().UTC()
	e := &environment{id: s.w.nextEnvID, name: name, tier: in["tier"], state: "available", createdAt: now, updatedAt: now,
		externalURL: in["external_url"], written: true}
	if e.tier == "" {
		e.tier = change.GuessTier(name)
	}
	s.w.nextEnvID++
	p.envs = append(p.envs, e)
	out := e.json(c.base, p)
	s.mu.Unlock()
	rec.Status, rec.EnvironmentID = http.StatusCreated, e.id
	s.recordEnvWrite(rec)
	writeJSON(c.w, http.StatusCreated, out)
}

// editEnvironment answers PUT /projects/:id/environments/:environment_id:
// 200 with the environment, its external_url and tier as given.
func (s *Sim) editEnvironment(c *call) {
	pid := s.hookProject(c, true)
	if pid == 0 {
		return
	}
	id, err := strconv.ParseInt(c.params[1], 10, 64)
	if err != nil {
		c.badRequest("environment_id is invalid")
		return
	}
	in, err := hookParams(c)
	if err != nil {
		c.badRequest(err.Error())
		return
	}
	rec := EnvironmentWrite{Method: http.MethodPut, ProjectID: pid, EnvironmentID: id, Params: in}
	if bad := checkEnvParams(in); len(bad) > 0 {
		rec.Status = http.StatusBadRequest
		s.recordEnvWrite(rec)
		writeJSON(c.w, http.StatusBadRequest, map[string]any{"message": bad})
		return
	}
	s.mu.Lock()
	p := s.w.byID[pid]
	var e *environment
	for _, x := range p.envs {
		if x.id == id {
			e = x
		}
	}
	if e == nil {
		s.mu.Unlock()
		rec.Status = http.StatusNotFound
		s.recordEnvWrite(rec)
		c.notFound("Not found")
		return
	}
	if u, ok := in["external_url"]; ok {
		e.externalURL, e.written = u, true
	}
	if t, ok := in["tier"]; ok {
		e.tier = t
	}
	e.updatedAt = s.now().UTC()
	out := e.json(c.base, p)
	s.mu.Unlock()
	rec.Status = http.StatusOK
	s.recordEnvWrite(rec)
	writeJSON(c.w, http.StatusOK, out)
}
