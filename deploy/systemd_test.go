package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var unitPath = filepath.Join("systemd", "labtrail.service")

// unit is a systemd unit file: section -> key -> values, in order (a key
// may repeat).
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: a setting outside any section", path, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: expected Key=value on one line", path, n)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the single value of section's key, or "".
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) > 1 {
		t.Errorf("[%s] %s is set %d times", section, key, len(vs))
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// TestSystemdUnit checks the unit's structure: labtrail serve as an
// unprivileged user with its state directory, secrets from a root-only
// environment file, restarted on failure, and the hardening that keeps it
// to its directory and the network.
func TestSystemdUnit(t *testing.T) {
	u := readUnit(t, unitPath)
	known := knownSettings(t)
	const svc = "Service"
	execStart := strings.Fields(u.one(t, svc, "ExecStart"))
	if len(execStart) != 2 || !filepath.IsAbs(execStart[0]) || filepath.Base(execStart[0]) != "labtrail" || execStart[1] != "serve" {
		t.Errorf("ExecStart=%s; want /path/to/labtrail serve", strings.Join(execStart, " "))
	}
	if u.one(t, svc, "DynamicUser") != "yes" && u.one(t, svc, "User") == "" {
		t.Error("neither DynamicUser=yes nor User=: labtrail would run as root")
	}
	if u.one(t, svc, "User") == "root" {
		t.Error("User=root")
	}
	state := u.one(t, svc, "StateDirectory")
	if state == "" {
		t.Fatal("no StateDirectory=: with ProtectSystem=strict labtrail could write nowhere")
	}
	dir := "/var/lib/" + state
	env := map[string]string{}
	for _, e := range u[svc]["Environment"] {
		k, v, _ := strings.Cut(strings.Trim(e, `"`), "=")
		env[k] = v
		if !known[k] {
			t.Errorf("Environment=%s: %s is not a setting labtrail reads", e, k)
		}
		if k == "GITLAB_TOKEN" || strings.Contains(k, "SECRET") {
			t.Errorf("Environment=%s: secrets belong in the EnvironmentFile (systemctl show prints Environment=)", k)
		}
	}
	if db := env["LABTRAIL_DB"]; filepath.Dir(db) != dir {
		t.Errorf("LABTRAIL_DB=%s is not in the state directory %s", db, dir)
	}
	if wd := u.one(t, svc, "WorkingDirectory"); wd != dir {
		t.Errorf("WorkingDirectory=%s; want the state directory %s (labtrail reads .env there)", wd, dir)
	}
	if ef := u.one(t, svc, "EnvironmentFile"); !filepath.IsAbs(strings.TrimPrefix(ef, "-")) {
		t.Errorf("EnvironmentFile=%q: want the root-only file holding GITLAB_TOKEN", ef)
	}
	for key, want := range map[string]string{
		"Restart":                 "on-failure",
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"CapabilityBoundingSet":   "",
		"RestrictSUIDSGID":        "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		if _, set := u[svc][key]; !set || u.one(t, svc, key) != want {
			t.Errorf("%s=%q; want %q", key, u.one(t, svc, key), want)
		}
	}
	if u.one(t, "Install", "WantedBy") != "multi-user.target" {
		t.Error("no WantedBy=multi-user.target: systemctl enable would not start it at boot")
	}
}

// TestSystemdAnalyze runs systemd's own checks where systemd-analyze is
// installed: verify (syntax, unknown keys, the executable) and the offline
// security review, which must rate the unit's exposure 2.0 or better.
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit was only parsed")
	}
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	// verify wants ExecStart's binary to exist: point it at an executable
	// that does (this test binary) in a copy of the unit.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := strings.Fields(readUnit(t, unitPath).one(t, "Service", "ExecStart"))[0]
	copyPath := filepath.Join(t.TempDir(), "labtrail.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(b), "ExecStart="+bin, "ExecStart="+self)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Any output is a finding: unknown keys are only warned about.
	if out, err := exec.Command(sa, "verify", copyPath).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", copyPath).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
}

// deployedCommands are the labtrail commands the deployment files run.
func deployedCommands(t *testing.T, im image) []string {
	t.Helper()
	cmds := []string{im.cmd[0]}
	if f := strings.Fields(readUnit(t, unitPath).one(t, "Service", "ExecStart")); len(f) > 1 {
		cmds = append(cmds, f[1])
	}
	m := readManifests(t)
	for _, c := range append(m.deployment.Spec.Template.Spec.InitContainers, m.deployment.Spec.Template.Spec.Containers...) {
		if len(c.Args) > 0 {
			cmds = append(cmds, c.Args[0])
		}
	}
	return cmds
}
