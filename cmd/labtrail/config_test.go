package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// Each command lists only its own flags, numbers, booleans and durations
// as such, and its environment-only settings apart.
func TestHelpShowsEachCommandsOwnFlagsWithTypes(t *testing.T) {
	tests := []struct {
		args       []string
		want, hide []string
	}{
		{[]string{"check", "--help"},
			[]string{"-gitlab-url url", "-http-timeout duration", "-log-level level", "GITLAB_TOKEN"},
			[]string{"-addr", "-db", "-webhook-allow", "-poll-interval", "-include-archived", "string (default \"false\")"}},
		{[]string{"sync", "--help"},
			[]string{"-include-archived\n", "-max-projects int", "-poll-interval duration", "-groups list", "env LABTRAIL_GROUPS, also read from GROUPS", "-once\n"},
			[]string{"-addr", "-webhook-allow", "-job-timeout", "LABTRAIL_WEBHOOK_SECRET"}},
		{[]string{"serve", "--help"},
			[]string{"-addr address", "-read-timeout duration", "-webhook-read-timeout duration", "-write-timeout duration",
				"-idle-timeout duration", "-shutdown-timeout duration", "-queue-shutdown-timeout duration", "-job-timeout duration",
				"LABTRAIL_WEBHOOK_SECRET", "LABTRAIL_WEBHOOK_SIGNING_SECRET"},
			nil},
		{[]string{"migrate", "--help"}, []string{"-db string", "-from"}, []string{"-gitlab-url", "-addr"}},
		{[]string{"sim", "--help"}, []string{"-read-timeout duration", "-idle-timeout duration"}, []string{"-gitlab-url", "-db"}},
		{[]string{"demo", "--help"}, []string{"-dir", "-read-timeout duration", "-addr address"}, []string{"-gitlab-url", "-db"}},
		// -db and the secret key: for --connection, an added connection's hooks.
		{[]string{"hooks", "install", "--help"}, []string{"-url url", "LABTRAIL_WEBHOOK_SECRET", "-connection", "-db string"}, []string{"-branches", "-addr"}},
	}
	for _, tc := range tests {
		out, errOut, code := labtrail(t, nil, tc.args...)
		help := out + errOut
		if code != 0 {
			t.Errorf("%v: exit %d", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(help, w) {
				t.Errorf("%v lacks %q:\n%s", tc.args, w, help)
			}
		}
		for _, h := range tc.hide {
			if strings.Contains(help, h) {
				t.Errorf("%v shows %q:\n%s", tc.args, h, help)
			}
		}
	}
}

// Settings come from a flag, else the environment, else the default; a
// bad environment value is an error naming its variable; LABTRAIL_GROUPS
// wins over GROUPS, which is still read.
func TestSettingsFromFlagsAndEnvironment(t *testing.T) {
	build := func(env map[string]string, args ...string) (config, error) {
		for _, k := range []string{"LABTRAIL_GROUPS", "GROUPS", "POLL_INTERVAL", "LABTRAIL_MAX_PROJECTS", "LABTRAIL_INCLUDE_ARCHIVED"} {
			t.Setenv(k, "")
		}
		for k, v := range env {
			t.Setenv(k, v)
		}
		fs := newFlagSet("sync", "sync", io.Discard)
		b := useSettings(fs, selectionSettings, syncSettings)
		if err := parse(fs, args); err != nil {
			return config{}, err
		}
		return b()
	}
	c, err := build(map[string]string{"GROUPS": "old", "POLL_INTERVAL": "90"})
	if err != nil || strings.Join(c.Groups, ",") != "old" || c.PollInterval.Seconds() != 90 || c.MaxProjects != 100 || c.IncludeArchived {
		t.Errorf("GROUPS and defaults: %+v %v", c, err)
	}
	c, err = build(map[string]string{"GROUPS": "old", "LABTRAIL_GROUPS": "acme,tools", "POLL_INTERVAL": "2m"})
	if err != nil || strings.Join(c.Groups, ",") != "acme,tools" || c.PollInterval.Minutes() != 2 {
		t.Errorf("LABTRAIL_GROUPS over GROUPS: %+v %v", c.Groups, err)
	}
	c, err = build(map[string]string{"LABTRAIL_GROUPS": "acme", "LABTRAIL_MAX_PROJECTS": "abc"}, "--groups", "cli", "--max-projects", "7", "--include-archived")
	if err != nil || strings.Join(c.Groups, ",") != "cli" || c.MaxProjects != 7 || !c.IncludeArchived {
		t.Errorf("flags over the environment: %+v %v", c, err)
	}
	for env, name := range map[string]string{"LABTRAIL_MAX_PROJECTS": "abc", "LABTRAIL_INCLUDE_ARCHIVED": "maybe", "POLL_INTERVAL": "soon"} {
		if _, err := build(map[string]string{env: name}); err == nil || !strings.Contains(err.Error(), env) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v", env, name, err)
		}
	}
	if _, err := build(nil, "--max-projects", "-3"); err != errUsage {
		t.Errorf("--max-projects -3: %v, want a usage error", err)
	}
}

// A first sync or serve that GitLab refuses creates no database and no
// lock; an existing database is left alone.
func TestRefusedFirstRunCreatesNothing(t *testing.T) {
	_, simURL := startSim(t, gitlabsim.Options{Seed: 1, Projects: 1, MRs: 1, Pipelines: 1})
	dir := t.TempDir()
	db := filepath.Join(dir, "labtrail.db")
	env := syncEnv(simURL, db)
	env["GITLAB_TOKEN"] = "wrong"
	if _, errOut, code := labtrail(t, env, "sync", "--once"); code != 1 || !strings.Contains(errOut, "rejected the token") {
		t.Errorf("sync with a wrong token: exit %d, %s", code, errOut)
	}
	env["LABTRAIL_ADDR"] = "127.0.0.1:0"
	if _, errOut, code := labtrail(t, env, "serve"); code != 1 || !strings.Contains(errOut, "rejected the token") {
		t.Errorf("serve with a wrong token: exit %d, %s", code, errOut)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a refused first run left %v", left)
	}
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	labtrail(t, env, "sync", "--once")
	if _, err := os.Stat(db); err != nil {
		t.Errorf("an existing database was removed: %v", err)
	}
}

// labtrail demo removes its temporary directory when it stops, unless
// --dir named one.
func TestDemoRemovesItsTemporaryDirectory(t *testing.T) {
	run := func(args ...string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- runDemo(ctx, append([]string{"--addr", "127.0.0.1:0", "--log-level", "error", "--projects", "1", "--mrs", "2", "--pipelines", "2"}, args...), pw, io.Discard)
			pw.Close()
		}()
		sc := bufio.NewScanner(pr)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "Open ") {
		}
		cancel()
		go io.Copy(io.Discard, pr)
		if err := <-done; err != nil {
			t.Fatalf("demo: %v", err)
		}
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	run()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("demo left %v in the temporary directory", left)
	}
	keep := filepath.Join(t.TempDir(), "kept")
	run("--dir", keep)
	if _, err := os.Stat(filepath.Join(keep, "labtrail.db")); err != nil {
		t.Errorf("--dir was not kept: %v", err)
	}
}
