package serverless

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

// Store is what the function reads and writes: the server's reads, the
// poller's writes and the webhook deliveries' conversion.
type Store interface {
	server.Store
	store.DeliveryConverter
}

// MaxWebhookBody is the largest webhook payload a Function URL passes on:
// Lambda refuses a synchronous invocation over 6 MB (6,291,456 bytes)
// before the function sees it, so a larger GitLab payload never arrives.
const MaxWebhookBody = 6 << 20

// Function is labtrail as one Lambda function. Build it with New once per
// cold start; Invoke serves every event after that.
type Function struct {
	cfg    Config
	log    *slog.Logger
	gl     *gitlab.Client
	poller *ingest.Poller
	conv   *ingest.Converter
	routes http.Handler
	// open serves the webhook and the reads of a caller holding the API
	// token; guarded, when the store keeps API tokens, checks theirs.
	open, guarded http.Handler
	apiToken      [32]byte // SHA-256 of Config.APIToken
	hasAPIToken   bool
}

// New builds the function over st with the secrets already in c
// (LoadSecrets).
func New(c Config, st Store, log *slog.Logger) (*Function, error) {
	if log == nil {
		log = slog.Default()
	}
	gc := c.GitLab
	gc.Logger = log
	gl, err := gitlab.New(gc)
	if errors.Is(err, gitlab.ErrBadURL) {
		return nil, fmt.Errorf("GITLAB_URL: %w", err)
	}
	if err != nil {
		return nil, err
	}
	f := &Function{cfg: c, log: log, gl: gl}
	f.poller = &ingest.Poller{GitLab: gl, Store: st, Log: log, Selection: c.Selection, Branches: c.Branches,
		FullSweep: c.FullSweep, Sweep: c.Sweep}
	f.conv = &ingest.Converter{Store: st, Branches: c.Branches, Selection: c.Selection, Log: log}
	open := server.New(st, log)
	open.SetHints(server.Hints{Webhooks: "webhooks are not set up: put the webhook's Secret token in the SSM parameter LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER names"})
	if len(c.WebhookSecrets) > 0 {
		wh, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: c.WebhookSecrets, SigningSecrets: c.SigningSecrets,
			MaxBody: MaxWebhookBody}, st, f.conv, log)
		if err != nil {
			return nil, fmt.Errorf("LABTRAIL_WEBHOOK_SIGNING_SECRET: %w", err)
		}
		open.EnableWebhooks(wh, f.conv.Replay)
	} else {
		log.Info("webhooks off: no webhook secret; the schedule alone keeps the history")
	}
	f.open = open
	if ts, ok := st.(store.TokenStore); ok {
		guarded := server.New(st, log)
		guarded.EnableAuth(auth.NewTokens(ts), server.AuthOptions{Audit: ts})
		f.guarded = guarded
	}
	if c.APIToken != "" {
		f.apiToken, f.hasAPIToken = sha256.Sum256([]byte(c.APIToken)), true
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/webhooks/gitlab", f.open)
	for _, p := range []string{"/api/v1/events", "/api/v1/events/{id}", "/api/v1/sync/status"} {
		mux.HandleFunc("GET "+p, f.read)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint on labtrail's function URL: "+r.Method+" "+r.URL.Path+
			" (it serves POST /api/v1/webhooks/gitlab, GET /api/v1/events, /api/v1/events/{id} and /api/v1/sync/status)")
	})
	f.routes = mux
	return f, nil
}

// read serves a read to a caller with the API token, or to one with an
// API token the store keeps; anyone else gets 401.
func (f *Function) read(w http.ResponseWriter, r *http.Request) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if f.hasAPIToken && strings.EqualFold(scheme, "Bearer") && tok != "" {
		// Hashes of equal length compare in constant time whatever the
		// token's length.
		h := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(h[:], f.apiToken[:]) == 1 {
			f.open.ServeHTTP(w, r)
			return
		}
	}
	if f.guarded != nil {
		f.guarded.ServeHTTP(w, r)
		return
	}
	challenge := `Bearer realm="labtrail"`
	if r.Header.Get("Authorization") != "" {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, "send the API token as Authorization: Bearer <token>")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Invoke is the Lambda handler: it tells a scheduled EventBridge event
// from a Function URL request by the JSON's shape.
func (f *Function) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	var shape struct {
		Source         string          `json:"source"`
		DetailType     string          `json:"detail-type"`
		RawPath        *string         `json:"rawPath"`
		RequestContext json.RawMessage `json:"requestContext"`
	}
	if err := json.Unmarshal(payload, &shape); err != nil {
		return nil, fmt.Errorf("the event is not a JSON object: %w", err)
	}
	switch {
	case shape.RawPath != nil && len(shape.RequestContext) > 0:
		req, err := parseURLRequest(payload)
		if err != nil {
			return nil, err
		}
		return f.ServeURL(ctx, req), nil
	case shape.Source == "aws.events" || shape.DetailType == "Scheduled Event":
		return f.Sync(ctx), nil
	}
	return nil, errors.New("unknown event: labtrail's function takes EventBridge scheduled events and Function URL requests")
}

// SyncReport is what a scheduled invocation returns.
type SyncReport struct {
	Projects int      `json:"projects"`
	Fetched  int      `json:"fetched"`
	Stored   int      `json:"stored"`
	Errors   []string `json:"errors"`
	// Complete is false when the pass stopped before the function's
	// deadline; the next one resumes from the cursors.
	Complete       bool  `json:"complete"`
	GitLabRequests int64 `json:"gitlab_requests"`
	DurationMS     int64 `json:"duration_ms"`
}

// Sync runs one sync pass of the selected projects, stopping a margin
// before ctx's deadline (the function's timeout): every page is stored
// before its cursor moves, so whatever the pass did not reach is where
// the next one starts.
func (f *Function) Sync(ctx context.Context) SyncReport {
	start := time.Now()
	parent := ctx
	if dl, ok := ctx.Deadline(); ok {
		margin := min(f.cfg.Margin, time.Until(dl)/10)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	rep := SyncReport{Errors: []string{}}
	// Deliveries an earlier invocation stored but could not convert.
	if err := f.conv.Drain(ctx); err != nil && ctx.Err() == nil {
		rep.Errors = append(rep.Errors, "converting stored webhook deliveries: "+err.Error())
	}
	before := f.gl.Requests()
	res, err := f.poller.SyncAll(ctx)
	rep.GitLabRequests = f.gl.Requests() - before
	rep.Projects = len(res.Projects)
	for _, t := range res.Totals() {
		rep.Fetched += t.Fetched
		rep.Stored += t.Stored
	}
	for _, p := range res.Projects {
		for _, c := range p.Counts {
			f.log.Info("sync pass", "project", c.ProjectPath, "kind", c.Kind, "parent", c.Parent, "fetched", c.Fetched, "stored", c.Stored)
		}
	}
	stopped := ctx.Err() != nil && parent.Err() == nil
	switch {
	case stopped:
		rep.Errors = append(rep.Errors, "stopped before the function's deadline; the next run resumes from the cursors")
	case err != nil:
		rep.Errors = append(rep.Errors, err.Error())
	}
	if err == nil {
		if perr := res.Err(); perr != nil {
			rep.Errors = append(rep.Errors, strings.Split(perr.Error(), "\n")...)
		}
	}
	rep.Complete = !stopped && err == nil && res.Err() == nil
	rep.DurationMS = time.Since(start).Milliseconds()
	lvl := slog.LevelInfo
	if len(rep.Errors) > 0 {
		lvl = slog.LevelWarn
	}
	f.log.Log(parent, lvl, "sync pass done", "projects", rep.Projects, "fetched", rep.Fetched, "stored", rep.Stored,
		"complete", rep.Complete, "gitlab_requests", rep.GitLabRequests, "errors", rep.Errors, "duration_ms", rep.DurationMS)
	return rep
}

// ServeURL serves a Function URL request with the server's handlers. A
// webhook delivery is stored before its 2xx and converted right after, in
// the same invocation (the function may be frozen once it answers).
func (f *Function) ServeURL(ctx context.Context, e URLRequest) URLResponse {
	r, err := toHTTPRequest(ctx, e)
	if err != nil {
		w := newResponseWriter()
		writeError(w, http.StatusBadRequest, err.Error())
		return w.response()
	}
	w := newResponseWriter()
	f.routes.ServeHTTP(w, r)
	if r.Method == http.MethodPost && r.URL.Path == "/api/v1/webhooks/gitlab" && w.status < 300 {
		if err := f.conv.Drain(ctx); err != nil {
			// Stored is what counts: the delivery stays pending for the
			// next invocation's drain.
			f.log.Warn("webhook delivery stored but not converted yet; the next invocation converts it", "err", err)
		}
	}
	return w.response()
}
