package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
	"github.com/labtrail/labtrail/internal/store/dynamodb/dynalitetest"
)

// dynamoAPI serves labtrail's read API over the DynamoDB table.
func dynamoAPI(t *testing.T, table string) string {
	t.Helper()
	st, err := dynamodb.Open(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(server.New(st, nil))
	t.Cleanup(ts.Close)
	return ts.URL
}

// migrate creates a DynamoDB table with its indexes (dynalite has no TTL:
// a warning, not a failure, and again on a second run); sync --once fills
// it with what the simulator holds, and a second sync stores nothing.
func TestDynamoDBMigrateAndSync(t *testing.T) {
	dynalitetest.Env(t)
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 5, Projects: 2, MRs: 8, Pipelines: 8})
	db := "dynamodb://labtrail-sync"
	for range 2 {
		out, errOut, code := labtrail(t, nil, "migrate", "--db", db)
		if code != 0 || !strings.Contains(out, "table, indexes and time to live") || !strings.Contains(out, "warning: this DynamoDB has no time to live") {
			t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
		}
	}
	env := syncEnv(simURL, db)
	out, errOut, code := labtrail(t, env, "sync", "--once")
	if code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	assertStoreEqualsTruth(t, sim, dynamoAPI(t, "labtrail-sync"))
	out, errOut, code = labtrail(t, env, "sync", "--once")
	if code != 0 || totalStored(t, out) != 0 {
		t.Fatalf("second sync: exit %d, stored %d\n%s%s", code, totalStored(t, out), out, errOut)
	}
	sim.Advance()
	if out, errOut, code := labtrail(t, env, "sync", "--once"); code != 0 || totalStored(t, out) == 0 {
		t.Fatalf("sync after the simulator moved: exit %d\n%s%s", code, out, errOut)
	}
	assertStoreEqualsTruth(t, sim, dynamoAPI(t, "labtrail-sync"))
}

// migrate --from a SQLite file --to a DynamoDB table creates the table,
// copies the history with progress, verifies it, and a second copy writes
// nothing.
func TestDynamoDBMigrateFromSQLite(t *testing.T) {
	dynalitetest.Env(t)
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 6, Projects: 1, MRs: 8, Pipelines: 8})
	file := filepath.Join(t.TempDir(), "labtrail.db")
	if out, errOut, code := labtrail(t, syncEnv(simURL, file), "sync", "--once"); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	db := "dynamodb://labtrail-copy"
	out, errOut, code := labtrail(t, nil, "migrate", "--from", file, "--to", db)
	if code != 0 || !strings.Contains(out, "copy complete and verified") || !strings.Contains(errOut, "copy events") {
		t.Fatalf("migrate --from --to: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "connections") {
		t.Errorf("the copy into DynamoDB lists the connections' tables, which it does not keep:\n%s", out)
	}
	assertStoreEqualsTruth(t, sim, dynamoAPI(t, "labtrail-copy"))
	out, errOut, code = labtrail(t, nil, "migrate", "--from", file, "--to", db)
	if code != 0 {
		t.Fatalf("second copy: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 4 && slices.Contains(store.Tables, f[0]) && f[3] != "0" {
			t.Errorf("second copy wrote %s: %s", f[0], line)
		}
	}
	// And back into a new SQLite file.
	back := filepath.Join(t.TempDir(), "back.db")
	out, errOut, code = labtrail(t, nil, "migrate", "--from", db, "--to", back)
	if code != 0 || !strings.Contains(out, "copy complete and verified") {
		t.Fatalf("migrate --from DynamoDB --to SQLite: exit %d\n%s%s", code, out, errOut)
	}
	assertStoreEqualsTruth(t, sim, api(t, back).URL)
}

// What DynamoDB cannot run is refused with a message that says why and
// what to do, before anything is written: serve, commands that need more
// than the core, a bad table name, a table not created.
func TestDynamoDBRefusals(t *testing.T) {
	dynalitetest.Env(t)
	_, simURL := startSim(t, gitlabsim.Options{Seed: 1, Projects: 1, MRs: 1, Pipelines: 1})
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"serve", map[string]string{"GITLAB_URL": simURL, "GITLAB_TOKEN": simToken, "LABTRAIL_DB": "dynamodb://labtrail-serve",
			"LABTRAIL_ADDR": "127.0.0.1:0"}, []string{"serve"}, "serve also needs the job queue"},
		{"export", map[string]string{"LABTRAIL_DB": "dynamodb://labtrail-serve"}, []string{"export"}, "only SQLite and PostgreSQL keep"},
		{"bad name", nil, []string{"migrate", "--db", "dynamodb://x"}, "a DynamoDB table name is 3 to 255"},
		{"no table", syncEnv(simURL, "dynamodb://labtrail-missing"), []string{"sync", "--once"}, "labtrail migrate --db dynamodb://labtrail-missing"},
		{"no region", map[string]string{"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": "/nonexistent", "AWS_PROFILE": ""},
			[]string{"migrate", "--db", "dynamodb://labtrail-region"}, "no AWS region: set AWS_REGION"},
		{"no credentials", map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
			"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"},
			[]string{"migrate", "--db", "dynamodb://labtrail-creds"}, "no AWS credentials (set AWS_PROFILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := labtrail(t, c.env, c.args...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, want an error saying %q\n%s%s", code, c.want, out, errOut)
			}
		})
	}
}

// tokens create, list and revoke work on a DynamoDB table, so the Lambda
// reading it accepts those tokens.
func TestDynamoDBTokens(t *testing.T) {
	dynalitetest.Env(t)
	db := "dynamodb://labtrail-tokens"
	if out, errOut, code := labtrail(t, nil, "migrate", "--db", db); code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	env := map[string]string{"LABTRAIL_DB": db}
	raw, errOut, code := labtrail(t, env, "tokens", "create", "--name", "ci", "--scope", "read")
	if code != 0 || !strings.HasPrefix(raw, auth.TokenPrefix) {
		t.Fatalf("tokens create: exit %d\n%s%s", code, raw, errOut)
	}
	st, err := dynamodb.Open(context.Background(), "labtrail-tokens")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.NewTokens(st).Verify(context.Background(), strings.TrimSpace(raw))
	if err != nil || tok.Name != "ci" {
		t.Fatalf("the token made on DynamoDB does not verify there: %+v %v", tok, err)
	}
	if out, errOut, code := labtrail(t, env, "tokens", "list"); code != 0 || !strings.Contains(out, "ci") {
		t.Fatalf("tokens list: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := labtrail(t, env, "tokens", "revoke", "ci"); code != 0 {
		t.Fatalf("tokens revoke: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := auth.NewTokens(st).Verify(context.Background(), strings.TrimSpace(raw)); err == nil {
		t.Fatal("a revoked token still verifies")
	}
	if acts, err := st.AdminActions(context.Background(), 0, 10); err != nil || len(acts) != 2 {
		t.Errorf("admin audit: %+v %v; want the create and the revoke", acts, err)
	}
}
