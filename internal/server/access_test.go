package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// accessMatrix is what every route needs, the one table the access test
// asserts: a route the server answers without an entry here fails it.
var accessMatrix = map[string]string{
	"GET /healthz":                                 "open",
	"GET /readyz":                                  "open",
	"GET /api/v1/events":                           "read",
	"GET /api/v1/events/{id}":                      "read",
	"GET /api/v1/export":                           "read",
	"GET /api/v1/projects":                         "read",
	"GET /api/v1/sync/status":                      "read",
	"GET /api/v1/audit":                            "admin",
	"GET /api/v1/admin/audit":                      "admin",
	"GET /api/v1/metrics/dora":                     "read",
	"GET /api/v1/metrics/merge-requests":           "read",
	"GET /api/v1/metrics/pipelines":                "read",
	"GET /api/v1/changes/before":                   "read",
	"POST /api/v1/webhooks/gitlab":                 "open",
	"GET /api/v1/webhooks/deliveries":              "read",
	"POST /api/v1/webhooks/deliveries/{id}/replay": "admin",
	"POST /api/v1/webhooks/test":                   "admin",
	"GET /metrics":                                 "metrics",
	"GET /{$}":                                     "read",
	"GET /merge-requests":                          "read",
	"GET /pipelines":                               "read",
	"GET /deployments":                             "read",
	"GET /timeline":                                "read",
	"GET /events/{id}":                             "read",
	"GET /static/{path...}":                        "open",
	"GET /sync":                                    "read",
	"POST /sync/deliveries/{id}/replay":            "admin",
	"GET /signin":                                  "open",
	"POST /signin":                                 "open",
	"POST /signout":                                "open",
	"POST /api/v1/deployments":                     "deploy",
	"POST /api/v1/webhooks/gitlab/{connection}":    "open",
	"GET /api/v1/admin/connections":                "admin",
	"POST /api/v1/admin/connections":               "admin",
	"DELETE /api/v1/admin/connections/{id}":        "admin",
	"GET /auth/gitlab":                             "open",
	"GET /auth/gitlab/callback":                    "open",
}

// accessServer is a server with access control on over a new SQLite
// store, its log in logs, and a token of each kind the matrix tries.
func accessServer(t *testing.T, o server.AuthOptions) (*httptest.Server, store.Store, map[string]string, *bytes.Buffer, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs bytes.Buffer
	srv := server.New(st, slog.New(slog.NewTextHandler(&logs, nil)))
	tokens := auth.NewTokens(st)
	o.Audit = st
	srv.EnableAuth(tokens, o)
	creds := map[string]string{"anonymous": ""}
	for _, sc := range []auth.Scope{auth.ScopeRead, auth.ScopeDeploy, auth.ScopeAdmin} {
		raw, _, err := tokens.Create(ctx, sc.String()+"-token", sc, 0)
		if err != nil {
			t.Fatal(err)
		}
		creds[sc.String()] = raw
	}
	expired, _ := auth.NewToken()
	if _, err := st.CreateToken(ctx, store.Token{Name: "old", Scope: "admin", Hash: auth.HashToken(expired),
		CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	creds["expired"] = expired
	revoked, _, err := tokens.Create(ctx, "gone", auth.ScopeAdmin, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeToken(ctx, "gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	creds["revoked"] = revoked
	creds["garbage"] = "lt_not-a-token"
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs, st, creds, &logs, path
}

// TestAccessMatrix asks every route as every kind of caller: anonymous,
// each scope, an expired, a revoked and a made-up token.
func TestAccessMatrix(t *testing.T) {
	hs, _, creds, logs, dbPath := accessServer(t, server.AuthOptions{})
	srv := server.New(nil, nil)
	seen := map[string]bool{}
	var bodies bytes.Buffer
	for _, rt := range srv.Routes() {
		key := rt.Method + " " + rt.Path
		seen[key] = true
		want, ok := accessMatrix[key]
		if !ok {
			t.Errorf("route %s has no entry in the access matrix: say what it needs", key)
			continue
		}
		if want != rt.Scope {
			t.Errorf("route %s needs %s, the matrix says %s", key, rt.Scope, want)
		}
		p := strings.NewReplacer("{id}", "1", "{path...}", "app.js", "{$}", "").Replace(rt.Path)
		for who, tok := range creds {
			req, _ := http.NewRequest(rt.Method, hs.URL+p, strings.NewReader("{}"))
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies.Write(body)
			denied := resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
			var wantStatus int // 0: let in
			switch {
			case want == "open":
			case who == "anonymous" || who == "expired" || who == "revoked" || who == "garbage":
				wantStatus = http.StatusUnauthorized
			case who == "admin":
			case (want == "read" || want == "metrics") && who == "read":
			case want == "deploy" && who == "deploy":
			default:
				wantStatus = http.StatusForbidden
			}
			switch {
			case wantStatus == 0 && denied:
				t.Errorf("%s as %s: %d, want it let in: %s", key, who, resp.StatusCode, body)
			case wantStatus != 0 && resp.StatusCode != wantStatus:
				t.Errorf("%s as %s: %d, want %d: %s", key, who, resp.StatusCode, wantStatus, body)
			case wantStatus == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="labtrail"`):
				t.Errorf("%s as %s: 401 without a Bearer challenge: %q", key, who, resp.Header.Get("WWW-Authenticate"))
			}
			// 503 is a part this test server has not set up (webhooks,
			// telemetry), which says how to; anything else is a fault.
			if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s as %s: %d", key, who, resp.StatusCode)
			}
		}
	}
	for key := range accessMatrix {
		if !seen[key] {
			t.Errorf("the access matrix names %s, which the server does not answer", key)
		}
	}
	// No token the test used is in the log, an answer or the database.
	db, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(dbPath + "-wal")
	for who, tok := range creds {
		if tok == "" {
			continue
		}
		secret := strings.TrimPrefix(tok, auth.TokenPrefix)
		for where, b := range map[string][]byte{"the log": logs.Bytes(), "the answers": bodies.Bytes(), "the database": db, "the WAL": wal} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the %s token is in %s", who, where)
			}
		}
	}
}

// TestAccessForeignOriginAndRateLimit: a POST from another site's page is
// refused whoever sends it, and replays are limited per token.
func TestAccessForeignOriginAndRateLimit(t *testing.T) {
	hs, st, creds, _, _ := accessServer(t, server.AuthOptions{MetricsPublic: true})
	post := func(path, origin string) *http.Response {
		req, _ := http.NewRequest("POST", hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+creds["admin"])
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post("/api/v1/webhooks/deliveries/1/replay", "https://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Errorf("a replay from another site: %d, want 403", r.StatusCode)
	}
	limited := 0
	for range 40 {
		r := post("/api/v1/webhooks/deliveries/1/replay", hs.URL)
		if r.StatusCode == http.StatusTooManyRequests {
			limited++
			if r.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Error("40 replays at once were all let through")
	}
	// Metrics public: open to anyone (this server has no telemetry set
	// up, and says so, but asks for no token).
	if resp, err := http.Get(hs.URL + "/metrics"); err != nil || resp.StatusCode == 401 || resp.StatusCode == 403 {
		t.Errorf("public /metrics: %v %v", resp.StatusCode, err)
	}
	// The replays, limited or not, are in the admin audit trail.
	as, err := st.AdminActions(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var replays, refused int
	for _, a := range as {
		if a.Action == "delivery.replay" {
			replays++
			if !a.OK {
				refused++
			}
		}
	}
	if replays < 40 || refused < limited {
		t.Errorf("admin audit: %d replays (%d refused), want at least 40 (%d limited)", replays, refused, limited)
	}
}
