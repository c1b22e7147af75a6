// Package gitlabsim is a deterministic, seeded fake GitLab that labtrail's
// tests, demo and benchmarks talk to over real HTTP.
//
// It writes GitLab's REST JSON from its own types, checked against GitLab's
// documentation and the sample payloads in testdata/, never from the client's
// types: a wrong field name on the client side must fail a test, not pass
// both sides.
//
// Web URLs (web_url, Link headers, _links) are built from the request's Host
// with scheme http, so they point back at the simulator that answered; with
// no Host they use http://gitlab.sim.
//
// Besides /api/v4 it serves, uncounted in Stats:
//
//	GET  /-/sim/stats    Stats as JSON
//	GET  /-/sim/truth    {"events": [TruthEvent...]}
//	POST /-/sim/advance  one Advance; answers {"count": <len(Truth())>}
//
// Truth holds merge requests, pipelines and their jobs. The jobs API has no
// updated_at, so a job's is the latest of its created_at, started_at and
// finished_at.
package gitlabsim

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// Options configure a simulated GitLab instance. Zero values take defaults.
type Options struct {
	Seed      int64         // default 1
	Projects  int           // default 5, spread over Groups groups
	Groups    int           // default 2
	MRs       int           // merge requests per project, default 300
	Pipelines int           // pipelines per project, default 300
	Token     string        // default "sim-token"; accepted as PRIVATE-TOKEN or Authorization: Bearer
	Scopes    []string      // token scopes, default ["api"]
	RateLimit int           // requests per minute per token; 0 = unlimited (headers then show GitLab.com's 2,000)
	Latency   time.Duration // added to every /api/v4 answer
	Activity  time.Duration // if > 0, Run advances the world every Activity
	// Now is the clock, default time.Now; the world's history spans the 180
	// days before the clock's time at New.
	Now     func() time.Time
	Version string // instance version, default "17.11.0-ee"
}

// TruthEvent is one object the simulator holds, as labtrail should end up
// storing it.
type TruthEvent struct {
	ID        string      `json:"id"`
	Kind      change.Kind `json:"kind"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// Stats counts the requests served to /api/v4 and /api/graphql.
type Stats struct {
	Requests int64            `json:"requests"`
	ByPath   map[string]int64 `json:"by_path"`
}

// Sim is a simulated GitLab instance. It is an http.Handler and safe for
// concurrent use.
type Sim struct {
	opts Options
	now  func() time.Time

	mu sync.RWMutex
	w  *world

	rateLimit atomic.Int64
	latency   atomic.Int64
	storm     atomic.Int64 // retry-after of a 429 storm; 0: none

	statsMu sync.Mutex
	stats   Stats

	limiter limiter
}

const defaultVersion = "17.11.0-ee"

// New builds a world from o. The same options (and clock) give the same world.
func New(o Options) *Sim {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Projects <= 0 {
		o.Projects = 5
	}
	if o.Groups <= 0 {
		o.Groups = 2
	}
	if o.Groups > o.Projects {
		o.Groups = o.Projects
	}
	if o.MRs < 0 {
		o.MRs = 0
	} else if o.MRs == 0 {
		o.MRs = 300
	}
	if o.Pipelines < 0 {
		o.Pipelines = 0
	} else if o.Pipelines == 0 {
		o.Pipelines = 300
	}
	if o.Token == "" {
		o.Token = "sim-token"
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"api"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = defaultVersion
	}
	s := &Sim{opts: o, now: o.Now}
	s.rateLimit.Store(int64(o.RateLimit))
	s.latency.Store(int64(o.Latency))
	s.stats.ByPath = map[string]int64{}
	s.limiter.windows = map[string]*window{}
	s.w = buildWorld(o, o.Now())
	return s
}

// Advance moves the world one step forward at the clock's current time:
// for a few projects it opens, merges and closes merge requests and creates
// and finishes pipelines. Given the seed and the step number, the choices
// are always the same.
func (s *Sim) Advance() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.advance(now)
}

// Run calls Advance every Options.Activity until ctx is done. It returns at
// once when Activity is 0.
func (s *Sim) Run(ctx context.Context) {
	if s.opts.Activity <= 0 {
		return
	}
	t := time.NewTicker(s.opts.Activity)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Advance()
		}
	}
}

// Truth returns every object the simulator holds, sorted by id.
func (s *Sim) Truth() []TruthEvent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.truth()
}

// Stats returns a copy of the request counts.
func (s *Sim) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	out := Stats{Requests: s.stats.Requests, ByPath: make(map[string]int64, len(s.stats.ByPath))}
	for k, v := range s.stats.ByPath {
		out.ByPath[k] = v
	}
	return out
}

// ResetStats sets every count back to zero.
func (s *Sim) ResetStats() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.stats = Stats{ByPath: map[string]int64{}}
}

// SetRateLimit changes the per-token requests per minute; 0 turns the limit
// off.
func (s *Sim) SetRateLimit(perMinute int) { s.rateLimit.Store(int64(perMinute)) }

// SetStorm makes every /api/v4 request answer 429 with the given
// Retry-After, as a GitLab under a throttle storm does, until called with 0.
func (s *Sim) SetStorm(retryAfter time.Duration) { s.storm.Store(int64(retryAfter)) }

// SetLatency changes the delay added to every /api/v4 answer.
func (s *Sim) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

func (s *Sim) count(route string) {
	s.statsMu.Lock()
	s.stats.Requests++
	s.stats.ByPath[route]++
	s.statsMu.Unlock()
}

var _ http.Handler = (*Sim)(nil)
