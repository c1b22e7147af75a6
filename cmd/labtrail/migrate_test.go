package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// pgExec runs statements on the database at u (its search_path included).
func pgExec(t *testing.T, u string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// A new database, SQLite or PostgreSQL, is migrated with the store's and
// River's migrations, each listed; a second run has nothing to apply.
func TestMigrateNewDatabase(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "new.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.SchemaURL(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db(t)
			out, errOut, code := labtrail(t, map[string]string{"LABTRAIL_DB": db}, "migrate")
			if code != 0 {
				t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
			}
			for _, want := range []string{"00001_init.sql", "00003_webhook_deliveries.sql", "job queue", "create river migration"} {
				if !strings.Contains(out, want) {
					t.Errorf("migrate output lacks %q:\n%s", want, out)
				}
			}
			out, errOut, code = labtrail(t, nil, "migrate", "--db", db)
			if code != 0 || !strings.Contains(out, "up to date") {
				t.Errorf("second migrate: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}

// serve refuses a database whose schema a newer labtrail migrated, naming
// both versions, and writes nothing to it; on PostgreSQL it also refuses
// an unmigrated one, saying to run labtrail migrate.
func TestServeRefusesUnknownSchema(t *testing.T) {
	_, simURL := startSim(t, gitlabsim.Options{Seed: 1, Projects: 1, MRs: 1, Pipelines: 1})
	serveEnv := func(db string) map[string]string {
		env := syncEnv(simURL, db)
		env["LABTRAIL_ADDR"] = "127.0.0.1:0"
		return env
	}
	t.Run("sqlite newer", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "future.db")
		if _, errOut, code := labtrail(t, nil, "migrate", "--db", db); code != 0 {
			t.Fatal(errOut)
		}
		sdb, err := sql.Open("sqlite", sqlite.DSN(db))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sdb.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, 1)`); err != nil {
			t.Fatal(err)
		}
		sdb.Close()
		before, _ := os.ReadFile(db)
		_, errOut, code := labtrail(t, serveEnv(db), "serve")
		if code != 1 || !strings.Contains(errOut, "version 99") || !strings.Contains(errOut, "newer than this labtrail") {
			t.Errorf("serve on a newer schema: exit %d\n%s", code, errOut)
		}
		if after, _ := os.ReadFile(db); string(after) != string(before) {
			t.Error("serve wrote to a database it refused")
		}
		if _, errOut, code := labtrail(t, syncEnv(simURL, db), "sync", "--once"); code != 1 || !strings.Contains(errOut, "version 99") {
			t.Errorf("sync on a newer schema: exit %d\n%s", code, errOut)
		}
	})
	t.Run("postgres unmigrated", func(t *testing.T) {
		db := pgtest.SchemaURL(t)
		_, errOut, code := labtrail(t, serveEnv(db), "serve")
		if code != 1 || !strings.Contains(errOut, "labtrail migrate") {
			t.Errorf("serve on an empty schema: exit %d\n%s", code, errOut)
		}
	})
	t.Run("postgres newer", func(t *testing.T) {
		db := pgtest.SchemaURL(t)
		if _, errOut, code := labtrail(t, nil, "migrate", "--db", db); code != 0 {
			t.Fatal(errOut)
		}
		pgExec(t, db, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, true)`)
		_, errOut, code := labtrail(t, serveEnv(db), "serve")
		if code != 1 || !strings.Contains(errOut, "version 99") || !strings.Contains(errOut, "newer than this labtrail") {
			t.Errorf("serve on a newer schema: exit %d\n%s", code, errOut)
		}
		if _, errOut, code := labtrail(t, nil, "migrate", "--db", db); code != 1 || !strings.Contains(errOut, "version 99") {
			t.Errorf("migrate of a newer schema: exit %d\n%s", code, errOut)
		}
	})
	t.Run("river newer", func(t *testing.T) {
		db := pgtest.SchemaURL(t)
		if _, errOut, code := labtrail(t, nil, "migrate", "--db", db); code != 0 {
			t.Fatal(errOut)
		}
		pgExec(t, db, `INSERT INTO river_migration (line, version) VALUES ('main', 99)`)
		_, errOut, code := labtrail(t, serveEnv(db), "serve")
		if code != 1 || !strings.Contains(errOut, "job queue schema") || !strings.Contains(errOut, "newer") {
			t.Errorf("serve on a newer job queue schema: exit %d\n%s", code, errOut)
		}
	})
}

// copyTable is one row of migrate --from/--to's table.
type copyTable struct {
	src, dst, written int64
	srcSum, dstSum    string
	ok                bool
}

func parseCopy(t *testing.T, out string) map[string]copyTable {
	t.Helper()
	tables := map[string]copyTable{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 7 || f[0] == "TABLE" {
			continue
		}
		var c copyTable
		var err error
		for i, p := range []*int64{&c.src, &c.dst, &c.written} {
			if *p, err = strconv.ParseInt(f[1+i], 10, 64); err != nil {
				t.Fatalf("bad line %q", line)
			}
		}
		c.srcSum, c.dstSum, c.ok = f[4], f[5], f[6] == "ok"
		tables[f[0]] = c
	}
	for _, name := range store.Tables {
		if _, ok := tables[name]; !ok {
			t.Fatalf("no line for table %s in:\n%s", name, out)
		}
	}
	return tables
}

// A SQLite history filled by a real sync (and webhook deliveries) copies
// into PostgreSQL completely: equal counts and checksums, the copy serves
// the simulator's truth, a second run writes nothing, and a copy that was
// changed afterwards is reported, with exit 1.
func TestMigrateCopySQLiteToPostgres(t *testing.T) {
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 8, Projects: 2, MRs: 25, Pipelines: 25})
	src := filepath.Join(t.TempDir(), "history.db")
	if out, errOut, code := labtrail(t, syncEnv(simURL, src), "sync", "--once"); code != 0 {
		t.Fatalf("sync: %s %s", out, errOut)
	}
	st, err := sqlite.Open(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		id, _, err := st.PutDelivery(context.Background(), store.Delivery{IdempotencyKey: fmt.Sprintf("k%d", i), EventType: "Push Hook",
			Headers: map[string]string{"X-Gitlab-Event": "Push Hook"}, Body: []byte(`{"object_kind":"push"}`), ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			st.MarkDelivery(context.Background(), id, store.DeliveryStoredRaw, "")
		}
	}
	st.Close()

	dst := pgtest.SchemaURL(t)
	out, errOut, code := labtrail(t, nil, "migrate", "--from", src, "--to", dst)
	if code != 0 {
		t.Fatalf("copy: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "copy events:") || !strings.Contains(errOut, "verify") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
	first := parseCopy(t, out)
	for name, c := range first {
		if !c.ok || c.src != c.dst || c.srcSum != c.dstSum || c.written != c.src {
			t.Errorf("%s: %+v", name, c)
		}
	}
	for _, name := range []string{"events", "timeline", "projects", "sync_state", "audit", "deliveries"} {
		if first[name].src == 0 {
			t.Errorf("nothing in %s: the test copies nothing there", name)
		}
	}
	pg, err := postgres.Connect(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(pg, nil))
	assertStoreEqualsTruth(t, sim, srv.URL)
	srv.Close()
	// The copy derived its metric facts from what it imported: every
	// metric answers the same on both.
	copied := metricAnswers(t, pg)
	pg.Close()
	if st, err = sqlite.Open(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if orig := metricAnswers(t, st); !reflect.DeepEqual(orig, copied) {
		t.Errorf("metrics differ after the copy:\n source %v\n copy   %v", orig, copied)
	}
	st.Close()

	// Again: nothing written, the same sums.
	out, errOut, code = labtrail(t, nil, "migrate", "--from", src, "--to", dst)
	if code != 0 {
		t.Fatalf("second copy: exit %d\n%s%s", code, out, errOut)
	}
	for name, c := range parseCopy(t, out) {
		if c.written != 0 || !c.ok || c.srcSum != first[name].srcSum || c.dst != first[name].dst {
			t.Errorf("second copy, %s: %+v", name, c)
		}
	}

	// The destination changed behind the copy's back: reported.
	pgExec(t, dst, `UPDATE events SET title = 'tampered' WHERE id = (SELECT min(id) FROM events)`,
		`DELETE FROM audit WHERE id = (SELECT max(id) FROM audit)`)
	out, errOut, code = labtrail(t, nil, "migrate", "--from", src, "--to", dst)
	if code != 1 || !strings.Contains(errOut, "differs") {
		t.Fatalf("copy onto a changed destination: exit %d\n%s%s", code, out, errOut)
	}
	third := parseCopy(t, out)
	if third["events"].ok || third["events"].srcSum == third["events"].dstSum {
		t.Errorf("changed event not detected: %+v", third["events"])
	}
	// The deleted audit entry is copied again: the re-run heals what is missing.
	if a := third["audit"]; !a.ok || a.written != 1 {
		t.Errorf("audit after a deleted entry: %+v", a)
	}
	if _, errOut, code := labtrail(t, nil, "migrate", "--from", filepath.Join(t.TempDir(), "typo.db"), "--to", dst); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("copy from a missing file: exit %d %s", code, errOut)
	}
}

// metricAnswers are the delivery metrics of st over all its history, as
// the API answers them (the ages of open merge requests left out: they
// move with the clock).
func metricAnswers(t *testing.T, st store.Store) map[string]any {
	t.Helper()
	api := server.New(st, nil)
	api.EnableMetrics(metrics.New(st, metrics.Config{}))
	srv := httptest.NewServer(api)
	defer srv.Close()
	out := map[string]any{}
	for _, path := range []string{"dora", "merge-requests", "pipelines"} {
		resp, err := http.Get(srv.URL + "/api/v1/metrics/" + path + "?since=2000-01-01&until=2100-01-01&bucket=month")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		if open, ok := m["slowest_open"].([]any); ok {
			for _, o := range open {
				delete(o.(map[string]any), "age_seconds")
			}
		}
		out[path] = m
	}
	if d := out["dora"].(map[string]any); len(d["deployments"].([]any)) == 0 {
		t.Fatalf("no production deployment in the history: the comparison would say nothing")
	}
	return out
}
