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
// It also serves GitLab's GraphQL API at /api/graphql for the queries
// labtrail sends (graphql.go), counted in Stats as "POST /api/graphql".
//
// Besides the APIs it serves, uncounted in Stats:
//
//	GET  /-/sim/stats    Stats as JSON
//	GET  /-/sim/truth    {"events": [TruthEvent...]}
//	POST /-/sim/advance  one Advance; answers {"count": <len(Truth())>}
//
// Truth holds every object of every kind in docs/kinds.md, with the ids and
// updated_at rules given there: merge requests, pipelines, jobs, commits on
// the default branch, issues, notes, branches, tags, releases, deployments,
// environments and registry images.
//
// The world's git history is semi-linear (merge_method rebase_merge): a
// merge rebases the MR's commits onto main, committed at the merge time,
// and adds a merge commit, so commits reach main in committed_date order
// and since= on main misses none. Source branches are kept after a merge,
// as objects are never deleted. Options.Archived projects (none by
// default) are archived (read only: Advance leaves them alone) and, from
// three projects on, the last one lives in the subgroup acme/tools.
//
// Faults (FailRate, TimeoutRate, SetStorm, SetProjectFault) change only the
// answers, never the world, and every faulty answer is counted in Stats.
package gitlabsim

import (
	"context"
	"net/http"
	"strings"
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
	// Issues per project; default MRs/3 (at least 2), negative for none.
	Issues int
	// Archived is how many projects (from the second on) are archived.
	// Default none: labtrail leaves archived projects out unless asked, so
	// a world that tests compare whole with the store keeps all active.
	Archived int

	// FailRate is the fraction of /api/v4 requests that answer a 5xx (500,
	// 502 or 503 with GitLab's bodies) before doing anything else. Which
	// requests fail follows from the seed and the request's sequence number.
	FailRate float64
	// TimeoutRate is the fraction of /api/v4 requests that hang for Hang
	// (or until the client gives up) and then answer 504, as a GitLab
	// behind a load balancer with a stuck backend does.
	TimeoutRate float64
	// Hang is how long a timed-out request hangs; default 30s.
	Hang time.Duration

	// WebhookURL, if set, receives every change Advance makes as GitLab's
	// project webhooks (see webhook.go), from a background worker.
	WebhookURL    string
	WebhookSecret string // sent as X-Gitlab-Token
	// SigningSecret ("whsec_<base64 key>"), if set, adds Standard Webhooks
	// signature headers: webhook-id, webhook-timestamp, webhook-signature.
	SigningSecret string
	// DropRate, DuplicateRate and ReorderRate are the shares of deliveries
	// never sent, sent twice (same Idempotency-Key) and sent after the next
	// one; which ones follows from the seed.
	DropRate, DuplicateRate, ReorderRate float64
	// BaseURL is the instance's URL in webhook payloads and
	// X-Gitlab-Instance; default http://gitlab.sim. (REST answers use the
	// request's Host instead.)
	BaseURL string

	// NoGraphQL makes /api/graphql answer as a GitLab whose GraphQL API is
	// turned off (404), so that clients fall back to REST; SetGraphQL
	// changes it at run time.
	NoGraphQL bool
	// GraphQLMaxComplexity is the highest complexity a GraphQL query may
	// score (graphql.go); default GitLab's 250 for a signed-in user.
	GraphQLMaxComplexity int
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
	// PeakPerMinute is the most requests seen in any 60-second window, by
	// the simulator's clock.
	PeakPerMinute int64 `json:"peak_per_minute"`
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

	faults faults

	statsMu sync.Mutex
	stats   Stats
	recent  ring // request times within the last minute, for PeakPerMinute

	limiter limiter

	hooks *webhooks // nil unless Options.WebhookURL is set

	projHooks projectHooks // project webhooks added through the API (hooks.go)
	envWrites envWrites    // environment writes answered (envwrites.go)

	oauth oauthState // GitLab as an OAuth provider (oauth.go)

	graphqlOff           atomic.Bool  // Options.NoGraphQL, SetGraphQL
	graphqlMaxComplexity atomic.Int64 // Options.GraphQLMaxComplexity; 0: GitLab's
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
	if o.Issues == 0 {
		o.Issues = max(o.MRs/3, 2)
	} else if o.Issues < 0 {
		o.Issues = 0
	}
	if o.Hang <= 0 {
		o.Hang = 30 * time.Second
	}
	s := &Sim{opts: o, now: o.Now}
	s.faults.init(o)
	s.rateLimit.Store(int64(o.RateLimit))
	s.latency.Store(int64(o.Latency))
	s.graphqlOff.Store(o.NoGraphQL)
	s.graphqlMaxComplexity.Store(int64(o.GraphQLMaxComplexity))
	s.stats.ByPath = map[string]int64{}
	s.limiter.windows = map[string]*window{}
	if o.BaseURL == "" {
		o.BaseURL = "http://gitlab.sim"
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	s.opts.BaseURL = o.BaseURL
	s.w = buildWorld(o, o.Now())
	s.hooks = newWebhooks(o, o.Now)
	return s
}

// Advance moves the world one step forward at the clock's current time:
// for a few projects it opens, merges and closes merge requests and creates
// and finishes pipelines. Given the seed and the step number, the choices
// are always the same.
func (s *Sim) Advance() { s.AdvanceOnly() }

// Activity is one sort of change Advance makes.
type Activity string

// The activities of Advance. Only merge requests and issues create the
// GitLab events that move a project's last_activity_at.
const (
	ActivityMergeRequests Activity = "merge_requests" // open, comment, approve, merge (pushes to main), close
	ActivityIssues        Activity = "issues"         // open, comment, close
	ActivityPipelines     Activity = "pipelines"      // start and finish pipelines and their jobs, start deployments
	ActivityDeployments   Activity = "deployments"    // finish running deployments, push registry images
	ActivityReleases      Activity = "releases"       // tag main's head and release it
)

// AdvanceOnly is Advance limited to the given activities: it lets a test
// make a change of one sort and see what notices it.
func (s *Sim) AdvanceOnly(acts ...Activity) {
	var only map[Activity]bool // nil: everything
	if len(acts) > 0 {
		only = map[Activity]bool{}
		for _, a := range acts {
			only[a] = true
		}
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooks == nil {
		s.w.advanceOnly(now, only)
		return
	}
	before := s.w.snapshot()
	s.w.advanceOnly(now, only)
	s.hooks.enqueue(s.w.hooksSince(before, s.hooks, s.opts.BaseURL))
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

// Truth returns every object the simulator holds, sorted by id. Notes,
// pipelines, jobs and container images carry their updated_at to the
// whole second: labtrail keeps them so (docs/kinds.md), as GitLab's
// GraphQL API gives no finer time.
func (s *Sim) Truth() []TruthEvent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := s.w.truth()
	for i, e := range out {
		switch e.Kind {
		case change.KindNote, change.KindPipeline, change.KindJob, change.KindImage:
			out[i].UpdatedAt = e.UpdatedAt.Truncate(time.Second)
		}
	}
	return out
}

// Stats returns a copy of the request counts.
func (s *Sim) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	out := Stats{Requests: s.stats.Requests, PeakPerMinute: s.stats.PeakPerMinute, ByPath: make(map[string]int64, len(s.stats.ByPath))}
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
	s.recent = ring{}
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
	now := s.now()
	s.statsMu.Lock()
	s.stats.Requests++
	s.stats.ByPath[route]++
	if n := s.recent.add(now); n > s.stats.PeakPerMinute {
		s.stats.PeakPerMinute = n
	}
	s.statsMu.Unlock()
}

// ring holds the times of the requests of the last minute in arrival
// order, so the sliding-window count is its length after dropping the old.
type ring struct {
	times []time.Time
	head  int
}

// add records t and returns how many requests fall in (t-60s, t].
func (r *ring) add(t time.Time) int64 {
	r.times = append(r.times, t)
	cut := t.Add(-time.Minute)
	for r.head < len(r.times) && !r.times[r.head].After(cut) {
		r.head++
	}
	// Compact once the dropped prefix dominates, so memory stays
	// proportional to one minute of traffic.
	if r.head > 1024 && r.head*2 > len(r.times) {
		r.times = append(r.times[:0], r.times[r.head:]...)
		r.head = 0
	}
	return int64(len(r.times) - r.head)
}

var _ http.Handler = (*Sim)(nil)
