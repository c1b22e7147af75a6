package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
)

// TestTwoConnections runs serve over two simulated GitLabs: the default
// connection from the environment and one added with labtrail
// connections add. Both are polled into one store with ids unique across
// them, each takes webhooks on its own path with its own secret, and no
// secret the test used is found in the database, the logs or any answer.
func TestTwoConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve against two simulators")
	}
	t.Parallel()
	for _, be := range []struct {
		name string
		db   func(t *testing.T) string
		dump func(t *testing.T, db string) []byte
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "labtrail.db") }, dumpSQLiteFiles},
		{"postgres", func(t *testing.T) string { return pgtest.SchemaURL(t) }, dumpPostgres},
	} {
		t.Run(be.name, func(t *testing.T) { testTwoConnections(t, be.db(t), be.dump) })
	}
}

func testTwoConnections(t *testing.T, db string, dump func(*testing.T, string) []byte) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const (
		defaultHook  = "default-hook-secret-0123"
		secondToken  = "glpat-second-connection-token-4567"
		secondHook   = "second-hook-secret-89ab"
		thirdToken   = "glpat-third-connection-token-cdef"
		thirdHook    = "third-hook-secret-0246"
		nameOfSecond = "second"
	)
	simA, urlA := startSim(t, gitlabsim.Options{Seed: 21, Projects: 2, MRs: 4, Pipelines: 4, Issues: -1})
	simB := gitlabsim.New(gitlabsim.Options{Seed: 22, Projects: 2, MRs: 4, Pipelines: 4, Issues: -1, Token: secondToken, RateLimit: 1 << 30,
		WebhookURL: "http://" + addr + "/api/v1/webhooks/gitlab/" + nameOfSecond, WebhookSecret: secondHook})
	tsB := httptest.NewServer(simB)
	t.Cleanup(tsB.Close)
	urlB := tsB.URL
	_ = simA

	var seen bytes.Buffer // every answer and every output, scanned for secrets at the end
	key, errOut, code := labtrailProc(t, nil, "secrets", "keygen")
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	key = strings.TrimSpace(key)
	env := map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": key, "LABTRAIL_CONNECTION_WEBHOOK_SECRET": secondHook}
	if out, errOut, code := labtrailProc(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d\n%s%s", code, out, errOut)
	}
	admin, errOut, code := labtrailProc(t, env, "tokens", "create", "--name", "ops", "--scope", "admin")
	if code != 0 {
		t.Fatalf("tokens create: %d %s", code, errOut)
	}
	admin = strings.TrimSpace(admin)
	out, errOut, code := labtrailProcStdin(t, secondToken+"\n", env, "connections", "add", "--name", nameOfSecond, "--url", urlB)
	seen.WriteString(out + errOut)
	if code != 0 {
		t.Fatalf("connections add: %d\n%s%s", code, out, errOut)
	}
	// The same name again is refused; so is a token without a key.
	if out, errOut, code := labtrailProcStdin(t, secondToken+"\n", env, "connections", "add", "--name", nameOfSecond, "--url", urlB); code == 0 {
		t.Errorf("a second connection named second: %s%s", out, errOut)
	}
	if _, errOut, code := labtrailProcStdin(t, secondToken+"\n", map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": ""}, "connections", "add", "--name", "other", "--url", urlB); code == 0 ||
		!strings.Contains(errOut, "LABTRAIL_SECRET_KEY") {
		t.Errorf("adding without a key: %d %s", code, errOut)
	}
	out, errOut, code = labtrailProc(t, env, "connections", "list")
	seen.WriteString(out + errOut)
	if code != 0 || !strings.Contains(out, nameOfSecond) || !strings.Contains(out, urlB) {
		t.Fatalf("connections list: %d\n%s%s", code, out, errOut)
	}

	// The second GitLab's hooks, installed from the connection's own URL,
	// token and secret.
	hookURL := "http://" + addr + "/api/v1/webhooks/gitlab/" + nameOfSecond
	out, errOut, code = labtrailProc(t, map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": key}, "hooks", "install",
		"--connection", nameOfSecond, "--url", hookURL)
	seen.WriteString(out + errOut)
	if code != 0 || !strings.Contains(out, "2 created, 0 updated, 0 failed, of 2 projects") {
		t.Fatalf("hooks install --connection: %d\n%s%s", code, out, errOut)
	}

	var logs syncBuffer
	c := config{
		GitLabURL: urlA, Token: simToken, DB: db, Addr: addr, SecretKey: key, Auth: "on",
		PollInterval: time.Hour, RequestsPerMinute: 1 << 30, HTTPTimeout: 30 * time.Second, Concurrency: 4,
		AuditRetention: time.Hour, WebhookSecrets: []string{defaultHook}, FullSweep: -1, ConvertBatch: 64,
		ShutdownTimeout: 5 * time.Second, QueueShutdownTimeout: 5 * time.Second, MaxProjects: 100,
	}
	ctx, cancel := context.WithCancel(context.Background())
	urlc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- serve(ctx, c, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), func(u string) { urlc <- u })
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	defer stop()
	var base string
	select {
	case base = <-urlc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	base = strings.TrimSuffix(base, "/")
	call := func(method, path, token string, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("X-Gitlab-Token", token)
		} else {
			req.Header.Set("Authorization", "Bearer "+admin)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		seen.Write(b)
		return resp.StatusCode, string(b)
	}
	get := func(path string, v any) {
		t.Helper()
		st, body := call("GET", path, "", "", nil)
		if st != 200 {
			t.Fatalf("GET %s: %d %s", path, st, body)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	listIDs := func(kind string) map[string]time.Time {
		out := map[string]time.Time{}
		var page struct {
			Events []apiEvent `json:"events"`
		}
		get("/api/v1/events?limit=1000&kind="+kind, &page)
		for _, e := range page.Events {
			out[e.ID] = e.UpdatedAt
		}
		return out
	}

	// Both GitLabs polled: each kind's ids are the default's unchanged and
	// the second's prefixed, all of them, and nothing else.
	want := map[string]time.Time{}
	for _, e := range simA.Truth() {
		if e.Kind == change.KindMergeRequest || e.Kind == change.KindPipeline {
			want[e.ID] = e.UpdatedAt
		}
	}
	for _, e := range simB.Truth() {
		if e.Kind == change.KindMergeRequest || e.Kind == change.KindPipeline {
			if _, clash := want[e.ID]; clash {
				// The same id in both GitLabs: what the prefix is for.
				t.Logf("id %s in both GitLabs", e.ID)
			}
			want[store.ConnectionEventID(nameOfSecond, e.ID)] = e.UpdatedAt
		}
	}
	var got map[string]time.Time
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got = map[string]time.Time{}
		for _, k := range []string{"merge_request", "pipeline"} {
			for id, at := range listIDs(k) {
				got[id] = at
			}
		}
		if len(got) == len(want) || time.Now().After(deadline) {
			break
		}
	}
	prefixed := 0
	for id, at := range want {
		if g, ok := got[id]; !ok || !g.Equal(at) {
			t.Errorf("event %s: stored %v (%v), GitLab says %v", id, g, ok, at)
		}
		if strings.HasPrefix(id, nameOfSecond+":") {
			prefixed++
		}
	}
	if len(got) != len(want) || prefixed == 0 || prefixed == len(want) {
		t.Fatalf("%d events stored, %d expected (%d of the second connection)\n%s", len(got), len(want), prefixed, logs.String())
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("event %s is in neither GitLab", id)
		}
	}

	// GitLab's test push through each installed hook reaches the
	// connection's endpoint with its secret.
	out, errOut, code = labtrailProc(t, map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": key}, "hooks", "test",
		"--connection", nameOfSecond, "--url", hookURL)
	seen.WriteString(out + errOut)
	if code != 0 || !strings.Contains(out, "2 OK, 0 failed") {
		t.Errorf("hooks test --connection: %d\n%s%s", code, out, errOut)
	}

	// Each connection's projects and sync state apart, and without a
	// connection every one's, each naming its own.
	var every struct {
		Projects []struct {
			Path       string `json:"path"`
			Connection string `json:"connection"`
		} `json:"projects"`
	}
	get("/api/v1/projects", &every)
	byConn := map[string]int{}
	for _, p := range every.Projects {
		byConn[p.Connection]++
	}
	if len(every.Projects) != 4 || byConn["default"] != 2 || byConn[nameOfSecond] != 2 {
		t.Errorf("every connection's projects: %+v", every.Projects)
	}
	for conn, prefixed := range map[string]bool{nameOfSecond: true, "default": false} {
		var ps struct {
			Projects []store.Project `json:"projects"`
		}
		get("/api/v1/projects?connection="+conn, &ps)
		var status struct {
			Sync []store.SyncState `json:"sync"`
		}
		get("/api/v1/sync/status?connection="+conn, &status)
		if len(ps.Projects) != 2 || len(status.Sync) == 0 {
			t.Errorf("connection %q: %d projects, %d sync states", conn, len(ps.Projects), len(status.Sync))
		}
		// Its projects are those its events are of.
		var events struct {
			Events []change.Event `json:"events"`
		}
		get("/api/v1/events?limit=1000&kind=merge_request", &events)
		paths := map[string]bool{}
		for _, e := range events.Events {
			if strings.HasPrefix(e.ID, nameOfSecond+":") == prefixed {
				paths[e.ProjectPath] = true
			}
		}
		for _, p := range ps.Projects {
			if !paths[p.Path] {
				t.Errorf("connection %q lists project %s, which none of its events is of (%v)", conn, p.Path, paths)
			}
		}
		for _, st := range status.Sync {
			if !paths[st.ProjectPath] {
				t.Errorf("connection %q has the sync state of %s", conn, st.ProjectPath)
			}
		}
	}
	if st, body := call("GET", "/api/v1/projects?connection=nosuch", "", "", nil); st != 404 {
		t.Errorf("projects of an unknown connection: %d %s", st, body)
	}

	// Each connection's events, and only they, by its filter.
	for conn, wantPrefixed := range map[string]bool{nameOfSecond: true, "default": false} {
		var page struct {
			Events []apiEvent `json:"events"`
		}
		get("/api/v1/events?limit=1000&kind=merge_request&kind=pipeline&connection="+conn, &page)
		if len(page.Events) == 0 {
			t.Errorf("no events of connection %s", conn)
		}
		for _, e := range page.Events {
			if strings.HasPrefix(e.ID, nameOfSecond+":") != wantPrefixed {
				t.Errorf("connection=%s lists %s", conn, e.ID)
			}
		}
	}

	// Webhooks: each connection's path takes only its own secret.
	pushBody := `{"object_kind":"push"}`
	hdr := map[string]string{"X-Gitlab-Event": "Push Hook", "Content-Type": "application/json"}
	for _, c := range []struct {
		path, secret string
		status       int
	}{
		{"/api/v1/webhooks/gitlab/" + nameOfSecond, "wrong-secret", 401},
		{"/api/v1/webhooks/gitlab/" + nameOfSecond, defaultHook, 401},
		{"/api/v1/webhooks/gitlab", secondHook, 401},
		{"/api/v1/webhooks/gitlab/default", secondHook, 401},
		{"/api/v1/webhooks/gitlab/nosuch", secondHook, 404},
		{"/api/v1/webhooks/gitlab/" + nameOfSecond, "", 401},
	} {
		if st, body := call("POST", c.path, c.secret, pushBody, hdr); st != c.status {
			t.Errorf("POST %s with a %d-byte secret: %d %s, want %d", c.path, len(c.secret), st, body, c.status)
		}
	}
	// The second GitLab's own webhooks arrive on its path and end as its
	// events.
	simB.Advance()
	simB.Advance()
	var hooked bool
	for deadline := time.Now().Add(60 * time.Second); !hooked && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var page struct {
			Deliveries []store.Delivery `json:"deliveries"`
		}
		get("/api/v1/webhooks/deliveries", &page)
		for _, d := range page.Deliveries {
			if d.Headers["Labtrail-Connection"] == nameOfSecond && d.Status == store.DeliveryProcessed {
				hooked = true
			}
		}
	}
	if !hooked {
		t.Fatalf("no delivery of the second connection was processed\n%s", logs.String())
	}
	var webhookEvent bool
	for deadline := time.Now().Add(30 * time.Second); !webhookEvent && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var page struct {
			Events []change.Event `json:"events"`
		}
		get("/api/v1/events?limit=1000", &page)
		for _, e := range page.Events {
			if e.Source == change.SourceWebhook && strings.HasPrefix(e.ID, nameOfSecond+":") {
				webhookEvent = true
			}
			if e.Source == change.SourceWebhook && !strings.HasPrefix(e.ID, nameOfSecond+":") {
				t.Errorf("a webhook of the second GitLab stored %s without its prefix", e.ID)
			}
		}
	}
	if !webhookEvent {
		t.Errorf("no event of the second connection came from its webhooks")
	}

	// The admin API: listed without secrets, added, removed, audited.
	st, body := call("GET", "/api/v1/admin/connections", "", "", nil)
	if st != 200 || !strings.Contains(body, `"name":"default"`) || !strings.Contains(body, `"name":"second"`) ||
		!strings.Contains(body, `"webhook":"/api/v1/webhooks/gitlab/second"`) {
		t.Fatalf("GET connections: %d %s", st, body)
	}
	var listed struct {
		Connections []struct {
			Name string `json:"name"`
			Sync struct {
				Projects    int        `json:"projects"`
				LastSuccess *time.Time `json:"last_success_at"`
				Failing     int        `json:"failing"`
			} `json:"sync"`
		} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(body), &listed); err != nil || len(listed.Connections) != 2 {
		t.Fatalf("GET connections: %s %v", body, err)
	}
	for _, c := range listed.Connections {
		if c.Sync.Projects != 2 || c.Sync.LastSuccess == nil || c.Sync.Failing != 0 {
			t.Errorf("connection %s's sync: %+v", c.Name, c.Sync)
		}
	}
	spec, _ := json.Marshal(map[string]any{"name": "third", "url": urlB, "token": thirdToken, "webhook_secret": thirdHook, "repos": []string{"x/y"}})
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	if st, body := call("POST", "/api/v1/admin/connections", "", string(spec), jsonHdr); st != 201 || !strings.Contains(body, `"name":"third"`) {
		t.Fatalf("POST connection: %d %s", st, body)
	}
	for _, c := range []struct {
		body   string
		status int
	}{
		{string(spec), 409},
		{`{"name":"Bad","url":"https://x","token":"` + thirdToken + `"}`, 400},
		{`{"name":"fourth","url":"https://x"}`, 400},
		{`{"name":"fourth","url":"https://x","token":"` + thirdToken + `","extra":1}`, 400},
		{`not json ` + thirdToken, 400},
	} {
		if st, body := call("POST", "/api/v1/admin/connections", "", c.body, jsonHdr); st != c.status {
			t.Errorf("POST %.40s: %d %s, want %d", c.body, st, body, c.status)
		}
	}
	if st, body := call("DELETE", "/api/v1/admin/connections/third", "", "", nil); st != 204 {
		t.Errorf("DELETE third: %d %s", st, body)
	}
	if st, _ := call("DELETE", "/api/v1/admin/connections/third", "", "", nil); st != 404 {
		t.Errorf("DELETE third again: %d", st)
	}
	_, body = call("GET", "/api/v1/admin/audit", "", "", nil)
	for _, a := range []string{`"action":"connection.add","target":"third"`, `"action":"connection.remove","target":"third"`} {
		if !strings.Contains(body, a) {
			t.Errorf("admin audit lacks %s: %s", a, body)
		}
	}
	// The second connection's GitLab calls are in the audit log under its
	// name.
	_, body = call("GET", "/api/v1/audit?limit=1000", "", "", nil)
	if !strings.Contains(body, `"job":"second:`) {
		t.Errorf("no audit entry of the second connection")
	}
	stop()

	// No secret the test used is anywhere: not in the database's raw
	// bytes, the logs or any output or answer.
	dbBytes := dump(t, db)
	for _, secret := range []string{secondToken, secondHook, thirdToken, thirdHook, defaultHook, simToken, key, admin} {
		for where, b := range map[string][]byte{"the database": dbBytes, "the logs": []byte(logs.String()), "the answers": seen.Bytes()} {
			if where == "the answers" && (secret == key || secret == admin) {
				continue // keygen's and tokens create's own outputs
			}
			if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(hex.EncodeToString([]byte(secret)))) {
				t.Errorf("%s holds the secret %.8s…", where, secret)
			}
		}
	}
}

// dumpSQLiteFiles is every byte of the database's files, its WAL too.
func dumpSQLiteFiles(t *testing.T, db string) []byte {
	var all []byte
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if len(all) == 0 {
		t.Fatal("no database file")
	}
	return all
}

// dumpPostgres is every row of every table of the test's schema as text
// (bytea in hex, which the scan also looks for).
func dumpPostgres(t *testing.T, db string) []byte {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var all bytes.Buffer
	for _, tb := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{tb}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			all.WriteString(s + "\n")
		}
		rows.Close()
	}
	if !strings.Contains(all.String(), "second") {
		t.Fatal("the dump holds no connection")
	}
	return all.Bytes()
}

// TestSecretsRotateCommand: labtrail secrets rotate re-encrypts the
// stored connections under the new key, refuses without the old one, and
// afterwards the new key alone reads them.
func TestSecretsRotateCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "labtrail.db")
	oldKey, _, _ := labtrail(t, nil, "secrets", "keygen")
	newKey, _, _ := labtrail(t, nil, "secrets", "keygen")
	oldKey, newKey = strings.TrimSpace(oldKey), strings.TrimSpace(newKey)
	keyFile := filepath.Join(t.TempDir(), "old.key")
	if err := os.WriteFile(keyFile, []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": oldKey, "LABTRAIL_CONNECTION_TOKEN": "glpat-rotate-me-1234",
		"LABTRAIL_CONNECTION_WEBHOOK_SECRET": "rotate-hook-5678"}
	if out, errOut, code := labtrail(t, env, "connections", "add", "--name", "second", "--url", "https://second.example"); code != 0 {
		t.Fatalf("add: %d %s%s", code, out, errOut)
	}
	idOf := func(key string) string {
		k, err := auth.ParseKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}
	list := func() string {
		out, errOut, code := labtrail(t, map[string]string{"LABTRAIL_DB": db}, "connections", "list")
		if code != 0 {
			t.Fatalf("list: %d %s", code, errOut)
		}
		return out
	}
	if !strings.Contains(list(), idOf(oldKey)) {
		t.Fatalf("list does not show the old key's id:\n%s", list())
	}
	// A GitLab sign-in's session whose token, under the old key, does not
	// open (bound to another session): the rotation ends it and says so.
	func() {
		st, err := openStore(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		k, _ := auth.ParseKey(oldKey)
		sealed, err := auth.NewKeyring(k).Seal(`{"access_token":"gloas-moved"}`, "session/00/oauth_token")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		if err := st.CreateSession(context.Background(), store.Session{IDHash: auth.HashToken("moved"), Kind: "oauth", UserID: 3, Name: "carol",
			Scope: "read", CSRF: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour), OAuthToken: sealed}); err != nil {
			t.Fatal(err)
		}
	}()
	// Without the old key: refused, nothing changed.
	if _, errOut, code := labtrail(t, map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": newKey}, "secrets", "rotate"); code == 0 ||
		!strings.Contains(errOut, "LABTRAIL_OLD_SECRET_KEY") {
		t.Errorf("rotate without the old key: %d %s", code, errOut)
	}
	out, errOut, code := labtrail(t, map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": newKey}, "secrets", "rotate", "--old-key-file", keyFile)
	const said = "2 secrets of 1 connection and 0 session tokens re-sealed; 1 session ended"
	if code != 0 || !strings.Contains(out, said) || !strings.Contains(out, idOf(newKey)) {
		t.Fatalf("rotate: %d %s%s", code, out, errOut)
	}
	if l := list(); !strings.Contains(l, idOf(newKey)) || strings.Contains(l, idOf(oldKey)) {
		t.Errorf("after rotation:\n%s", l)
	}
	// A copy into another database takes the connections along, sealed.
	other := filepath.Join(t.TempDir(), "other.db")
	if out, errOut, code := labtrail(t, nil, "migrate", "--from", db, "--to", other); code != 0 ||
		!strings.Contains(out, "connections") {
		t.Fatalf("migrate: %d %s%s", code, out, errOut)
	}
	// The new key alone opens them, in the copy.
	st, err := openStore(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.ConnectionByName(context.Background(), "second")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := auth.ParseKey(newKey)
	tok, sec, err := auth.NewKeyring(k).OpenConnection(c)
	if err != nil || tok != "glpat-rotate-me-1234" || sec != "rotate-hook-5678" {
		t.Errorf("open under the new key: %v", err)
	}
	var acts []string
	orig, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	as, _ := orig.AdminActions(context.Background(), 0, 10)
	for _, a := range as {
		acts = append(acts, a.Action)
		if a.Action == "secrets.rotate" && !strings.Contains(a.Detail, said) {
			t.Errorf("the audit entry of the rotation says %q", a.Detail)
		}
	}
	if _, err := orig.SessionByHash(context.Background(), auth.HashToken("moved")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session whose token did not open: %v", err)
	}
	if !strings.Contains(strings.Join(acts, ","), "secrets.rotate") || !strings.Contains(strings.Join(acts, ","), "connection.add") {
		t.Errorf("admin audit: %v", acts)
	}
}
