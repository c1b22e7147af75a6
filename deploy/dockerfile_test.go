package deploy_test

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

type stage struct {
	from, name string
	body       []instruction
}

// dockerfile is the parsed Dockerfile: the ARGs before the first FROM and
// the stages.
type dockerfile struct {
	globalArgs map[string]string
	stages     []stage
}

// parseDockerfile reads the Dockerfile's instructions. It knows the subset
// labtrail's Dockerfile uses and fails on anything it cannot read exactly
// rather than guessing.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ins []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue // comments may sit inside continued instructions too
		}
		if cur.Len() == 0 {
			start = n
		}
		cont := strings.HasSuffix(line, `\`)
		cur.WriteString(strings.TrimSuffix(line, `\`))
		if cont {
			cur.WriteString(" ")
			continue
		}
		cmd, args, _ := strings.Cut(cur.String(), " ")
		ins = append(ins, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " "), start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() != 0 {
		t.Fatalf("%s ends inside a continued instruction", path)
	}
	d := dockerfile{globalArgs: map[string]string{}}
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else if len(f) != 1 {
				t.Fatalf("Dockerfile:%d: FROM %s: expected IMAGE [AS NAME]", in.line, in.args)
			}
			d.stages = append(d.stages, s)
		case len(d.stages) == 0:
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			k, v, _ := strings.Cut(in.args, "=")
			d.globalArgs[k] = v
		default:
			s := &d.stages[len(d.stages)-1]
			s.body = append(s.body, in)
		}
	}
	return d
}

// all returns the arguments of every cmd instruction of s.
func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// env returns the stage's ENV settings. Only the KEY=VALUE form is read.
func (s stage) env(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range s.all("ENV") {
		for _, kv := range strings.Fields(in.args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("Dockerfile:%d: ENV %s: use KEY=VALUE", in.line, in.args)
			}
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// jsonForm reads an exec-form ENTRYPOINT or CMD: ["a", "b"].
func jsonForm(t *testing.T, in instruction) []string {
	t.Helper()
	var out []string
	if !strings.HasPrefix(in.args, "[") {
		t.Fatalf("Dockerfile:%d: %s %s: use the exec form [\"...\"], so signals reach labtrail", in.line, in.cmd, in.args)
	}
	for _, f := range strings.Split(strings.Trim(in.args, "[]"), ",") {
		s, err := strconv.Unquote(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("Dockerfile:%d: %s: %v", in.line, in.args, err)
		}
		out = append(out, s)
	}
	return out
}

// image is what the Dockerfile says about the image it builds.
type image struct {
	build, final stage
	buildRun     string // the RUN line that builds labtrail
	buildOut     string // its -o path in the build stage
	binary       string // where the final stage puts labtrail
	entrypoint   []string
	cmd          []string
	uid, gid     int
	workdir      string
	volume       string
	env          map[string]string
	dataOwner    string // --chown of the COPY that creates the data directory
	globalArgs   map[string]string
}

var goBuildOut = regexp.MustCompile(`\bgo build\b.*\s-o\s+(\S+)`)

func readImage(t *testing.T) image {
	t.Helper()
	d := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	if len(d.stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a build stage and a runtime stage", len(d.stages))
	}
	im := image{build: d.stages[0], final: d.stages[len(d.stages)-1], globalArgs: d.globalArgs}
	if im.build.name == "" {
		t.Fatal("the build stage has no name (FROM ... AS build)")
	}
	for _, in := range im.build.all("RUN") {
		if m := goBuildOut.FindStringSubmatch(in.args); m != nil {
			if im.buildRun != "" {
				t.Fatal("the build stage has more than one go build line")
			}
			im.buildRun, im.buildOut = in.args, m[1]
		}
	}
	if im.buildRun == "" {
		t.Fatal("the build stage has no RUN ... go build ... -o PATH")
	}
	one := func(cmd string) instruction {
		ins := im.final.all(cmd)
		if len(ins) != 1 {
			t.Fatalf("the runtime stage has %d %s lines; want one", len(ins), cmd)
		}
		return ins[0]
	}
	if v := jsonForm(t, one("VOLUME")); len(v) == 1 {
		im.volume = v[0]
	} else {
		t.Fatalf("VOLUME %q: want the one data directory", v)
	}
	for _, in := range im.final.all("COPY") {
		f := strings.Fields(in.args)
		if len(f) < 3 || f[0] != "--from="+im.build.name {
			t.Fatalf("Dockerfile:%d: COPY %s: the runtime stage copies only from the build stage", in.line, in.args)
		}
		switch src, dst := f[len(f)-2], f[len(f)-1]; {
		case src == im.buildOut:
			im.binary = dst
		case dst == im.volume:
			im.dataOwner = "0:0" // COPY's default
			if len(f) == 4 && strings.HasPrefix(f[1], "--chown=") {
				im.dataOwner = strings.TrimPrefix(f[1], "--chown=")
			}
		}
	}
	if im.dataOwner == "" {
		t.Fatalf("the runtime stage does not create the VOLUME %s (COPY --from=%s --chown=UID:GID ... %s)", im.volume, im.build.name, im.volume)
	}
	if users := im.final.all("USER"); len(users) != 1 {
		t.Fatalf("the runtime stage has %d USER lines; want one", len(users))
	} else {
		u, g, _ := strings.Cut(users[0].args, ":")
		var err1, err2 error
		im.uid, err1 = strconv.Atoi(u)
		im.gid, err2 = strconv.Atoi(g)
		if err1 != nil || err2 != nil {
			t.Fatalf("USER %s: want numeric UID:GID, so runAsNonRoot can verify it", users[0].args)
		}
	}
	im.entrypoint, im.cmd = jsonForm(t, one("ENTRYPOINT")), jsonForm(t, one("CMD"))
	im.workdir = one("WORKDIR").args
	im.env = im.final.env(t)
	return im
}

// TestDockerfile checks the Dockerfile's shape: a build stage making a
// static binary, and a runtime stage that runs it as a non-root user with
// its data in a volume.
func TestDockerfile(t *testing.T) {
	im := readImage(t)
	if !strings.Contains(im.buildRun, "CGO_ENABLED=0") {
		t.Errorf("the go build line does not set CGO_ENABLED=0: %s", im.buildRun)
	}
	if !strings.HasPrefix(im.build.from, "golang:") {
		t.Errorf("build stage FROM %s; want the golang image", im.build.from)
	}
	if im.final.from == im.build.from || strings.HasPrefix(im.final.from, "golang:") {
		t.Errorf("runtime stage FROM %s: the toolchain must not ship", im.final.from)
	}
	if im.uid == 0 || im.gid == 0 {
		t.Errorf("USER %d:%d: want a non-root user and group", im.uid, im.gid)
	}
	if im.binary == "" {
		t.Fatalf("the runtime stage does not COPY %s from the build stage", im.buildOut)
	}
	if len(im.entrypoint) != 1 || im.entrypoint[0] != im.binary {
		t.Errorf("ENTRYPOINT %q; want [%q]", im.entrypoint, im.binary)
	}
	if len(im.cmd) != 1 || im.cmd[0] != "serve" {
		t.Errorf("CMD %q; want [\"serve\"]", im.cmd)
	}
	if im.workdir != im.volume {
		t.Errorf("WORKDIR %s, VOLUME %s: labtrail reads .env and keeps its SQLite file in the working directory's volume", im.workdir, im.volume)
	}
	if im.dataOwner != fmt.Sprintf("%d:%d", im.uid, im.gid) {
		t.Errorf("the data directory is owned by %q, not the runtime user %d:%d", im.dataOwner, im.uid, im.gid)
	}
	if db := im.env["LABTRAIL_DB"]; filepath.Dir(db) != im.volume {
		t.Errorf("ENV LABTRAIL_DB=%s is not in the volume %s", db, im.volume)
	}
	if host, port, _ := strings.Cut(im.env["LABTRAIL_ADDR"], ":"); host != "" || !exposes(im.final, port) {
		t.Errorf("ENV LABTRAIL_ADDR=%s does not listen on all interfaces on the EXPOSEd port", im.env["LABTRAIL_ADDR"])
	}
	known := knownSettings(t)
	for k := range im.env {
		if !known[k] {
			t.Errorf("ENV %s is not a setting labtrail reads", k)
		}
	}
	// The builder's Go must be the one go.mod asks for, or it would
	// download a toolchain during the build.
	gomod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if v := strings.NewReplacer("${GO_VERSION}", im.globalArgs["GO_VERSION"]).Replace(im.build.from); m == nil || v != "golang:"+string(m[1]) {
		t.Errorf("build stage FROM %s; go.mod wants go %s", v, m[1])
	}
	ignore, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git", ".env", "*.db"} {
		if !slices.Contains(strings.Fields(string(ignore)), p) {
			t.Errorf(".dockerignore does not leave out %s", p)
		}
	}
}

// exposes reports whether s EXPOSEs port.
func exposes(s stage, port string) bool {
	for _, in := range s.all("EXPOSE") {
		for _, p := range strings.Fields(in.args) {
			if strings.TrimSuffix(p, "/tcp") == port {
				return true
			}
		}
	}
	return false
}

// knownSettings are the environment variables labtrail reads: every
// upper-case string literal of cmd/labtrail that names one.
func knownSettings(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "cmd", "labtrail", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	lit := regexp.MustCompile(`"((?:GITLAB|LABTRAIL|POLL|REPOS|GROUPS|BRANCHES)[A-Z0-9_]*)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllSubmatch(b, -1) {
			known[string(m[1])] = true
		}
	}
	if !known["GITLAB_TOKEN"] || !known["LABTRAIL_DB"] {
		t.Fatalf("found no settings in cmd/labtrail (%d found)", len(known))
	}
	return known
}

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// imageVersion is the VERSION build argument the tests pass.
const imageVersion = "v9.9.9-imagetest"

// builtBinary runs the Dockerfile's build line once per test binary, its
// output moved into a temporary directory, and returns the binary.
func builtBinary(t *testing.T, im image) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux")
	}
	if testing.Short() {
		t.Skip("-short: builds labtrail")
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "labtrail-build-"); buildErr != nil {
			return
		}
		bin := filepath.Join(buildDir, "labtrail")
		// The build stage's WORKDIR holds the repository, as ".." here.
		run := strings.Replace(im.buildRun, "-o "+im.buildOut, "-o "+bin, 1)
		build := exec.Command("sh", "-c", run)
		build.Dir = ".."
		build.Env = append(os.Environ(), "VERSION="+imageVersion, "TARGETOS=linux", "TARGETARCH="+runtime.GOARCH)
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%s: %v\n%s", run, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "labtrail")
}

// TestImageBinary runs the Dockerfile's build line, checks that the
// binary is static, and runs it laid out as the image holds it: as root,
// chrooted into a directory holding only the binary, the data directory
// owned as the image has it and /tmp, as the image's user, with the
// image's environment. Without a Docker daemon this is as close to the
// image as this machine gets.
func TestImageBinary(t *testing.T) {
	im := readImage(t)
	bin := builtBinary(t, im)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is not static", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	f.Close()
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" && s.Value != "0" {
			t.Errorf("built with CGO_ENABLED=%s", s.Value)
		}
	}

	root := layOut(t, im, bin, true)
	out, err := inImage(im, root, nil, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "labtrail "+imageVersion {
		t.Fatalf("labtrail version: %v: %q; want \"labtrail %s\"", err, out, imageVersion)
	}
	// Every command a deployment file runs is one the binary has.
	out, err = inImage(im, root, nil, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("labtrail help: %v\n%s", err, out)
	}
	for _, c := range deployedCommands(t, im) {
		if !regexp.MustCompile(`(?m)^\s+` + c + `\s`).Match(out) {
			t.Errorf("a deployment file runs `labtrail %s`, which labtrail help does not list:\n%s", c, out)
		}
	}

	// serve: the SQLite default in the data volume, writable by the image's
	// user and nothing else. GitLab is a closed local port: the poller
	// fails and retries, the API serves regardless.
	p := startServe(t, inImage(im, root, testEnv(), im.cmd...))
	p.get(t, "/healthz", http.StatusOK)
	p.get(t, "/readyz", http.StatusOK)
	t.Logf("serve in the image layout (%s) answers on %s", root, p.base)
	db := filepath.Join(root, im.env["LABTRAIL_DB"])
	if st, err := os.Stat(db); err != nil {
		t.Errorf("no database at LABTRAIL_DB: %v", err)
	} else if os.Geteuid() == 0 && st.Sys().(*syscall.Stat_t).Uid != uint32(im.uid) {
		t.Errorf("%s is owned by uid %d, not the image's user %d", im.env["LABTRAIL_DB"], st.Sys().(*syscall.Stat_t).Uid, im.uid)
	}
	p.stop(t)
}

// testEnv is what every run of the image here adds to its environment:
// a loopback port of the system's choosing (replicas share this machine's
// network), GitLab on a closed local port, quiet logs.
func testEnv() map[string]string {
	return map[string]string{"GITLAB_TOKEN": "glpat-imagetest", "GITLAB_URL": "http://127.0.0.1:1",
		"LABTRAIL_ADDR": "127.0.0.1:0", "LABTRAIL_LOG_LEVEL": "warn", "POLL_INTERVAL": "3600"}
}

// inImage returns a command running labtrail in the image laid out at
// root, with the image's environment plus env: as root, chrooted there as
// the image's user; otherwise in place, its paths moved under root.
func inImage(im image, root string, env map[string]string, args ...string) *exec.Cmd {
	c := exec.Command(im.binary, args...)
	all := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": "/tmp"}
	for k, v := range im.env {
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	for k, v := range all {
		c.Env = append(c.Env, k+"="+v)
	}
	c.Dir = im.workdir
	if os.Geteuid() == 0 {
		c.SysProcAttr = &syscall.SysProcAttr{Chroot: root,
			Credential: &syscall.Credential{Uid: uint32(im.uid), Gid: uint32(im.gid)}}
		return c
	}
	c.Path, c.Dir = filepath.Join(root, im.binary), filepath.Join(root, im.workdir)
	for i, kv := range c.Env {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(v, "/") && k != "PATH" {
			c.Env[i] = k + "=" + filepath.Join(root, v)
		}
	}
	return c
}

// served is a running labtrail serve.
type served struct {
	cmd    *exec.Cmd
	base   string
	stderr *bytes.Buffer
	done   chan error
}

// startServe starts c, a labtrail serve, and waits for the address it
// prints. It is killed when t ends if still running.
func startServe(t *testing.T, c *exec.Cmd) *served {
	t.Helper()
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &served{cmd: c, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	c.Stderr = p.stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process.Kill()
		p.done <- <-p.done
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "labtrail serving on "); ok {
				urls <- strings.TrimSuffix(strings.TrimSpace(u), "/")
			}
		}
		io.Copy(io.Discard, stdout)
		p.done <- c.Wait()
	}()
	select {
	case p.base = <-urls:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("serve exited: %v\n%s", err, p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start in 30s\n%s", p.stderr)
	}
	return p
}

func (p *served) get(t *testing.T, path string, want int) []byte {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("GET %s: %d %s; want %d", path, resp.StatusCode, b, want)
	}
	return b
}

// stop sends SIGTERM, as docker stop and Kubernetes do, and wants a clean
// exit within 20 s.
func (p *served) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("serve still running 20s after SIGTERM\n%s", p.stderr)
	}
}

// layOut builds the image's file system in a new directory: the binary
// (root's, read-only to others), the data directory and /tmp. Nothing
// else: the binary must need nothing else. With dataAsImage the data
// directory is owned as the Dockerfile's COPY makes it; without, it is
// root's, as a read-only root file system leaves it (Kubernetes).
func layOut(t *testing.T, im image, bin string, dataAsImage bool) string {
	t.Helper()
	root, err := os.MkdirTemp("", "labtrail-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	// MkdirTemp makes it 0700: the image's user must be able to enter it.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, im.binary)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, im.volume)
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if u, g, ok := strings.Cut(im.dataOwner, ":"); ok && dataAsImage && os.Geteuid() == 0 {
		uid, err1 := strconv.Atoi(u)
		gid, err2 := strconv.Atoi(g)
		if err1 != nil || err2 != nil {
			t.Fatalf("COPY --chown=%s: want numeric UID:GID", im.dataOwner)
		}
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(root, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return root
}
