// Package dynalitetest runs dynalite, a DynamoDB-compatible server in
// Node.js, for tests: one in-memory server per test process, installed from
// npm into the user's cache directory when absent.
//
// dynalite 4.0.0 has no transactions and no UpdateTimeToLive; code under test
// must not need either.
package dynalitetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the dynalite release the tests run against; .ci/run installs
// the same one into the same directory.
const Version = "4.0.0"

// server is this process's dynalite.
var server struct {
	sync.Mutex
	endpoint string
	err      error         // why it could not start
	died     chan struct{} // closed when it ended
	why      error         // why it ended
	proc     *os.Process
}

// Dir is where dynalite is installed: $XDG_CACHE_HOME/labtrail/dynalite
// (~/.cache/labtrail/dynalite), outside the repository so node_modules is
// never committed and is shared by every test process and by .ci/run.
func Dir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "labtrail", "dynalite"), nil
}

// Start returns the endpoint (http://127.0.0.1:PORT) of this process's
// dynalite, installing and starting it on first use. Without node or npm the
// test fails under CI (CI set) and is skipped elsewhere.
func Start(tb testing.TB) string {
	tb.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				tb.Fatalf("dynalite needs %s, which is not on PATH (CI is set, so this fails instead of skipping)", tool)
			}
			tb.Skipf("dynalite needs %s, which is not on PATH", tool)
		}
	}
	server.Lock()
	defer server.Unlock()
	if server.died != nil {
		select {
		case <-server.died:
			// Tables of the tests that ran are gone with it; the tests
			// still to run get a new one.
			tb.Logf("dynalite %v; starting another", server.why)
			server.endpoint, server.err, server.died = "", nil, nil
		default:
		}
	}
	if server.endpoint == "" && server.err == nil {
		server.endpoint, server.died, server.err = start()
	}
	if server.err != nil {
		tb.Fatalf("dynalite: %v", server.err)
	}
	return server.endpoint
}

// Env points the AWS SDK's default configuration at this process's dynalite
// through the standard variables only, so code under test has no test-only
// path: AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION and dummy static credentials
// (dynalite checks that requests are signed, not by whom).
func Env(tb testing.TB) string {
	tb.Helper()
	ep := Start(tb)
	tb.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ep)
	tb.Setenv("AWS_REGION", "us-east-1")
	tb.Setenv("AWS_ACCESS_KEY_ID", "dynalite")
	tb.Setenv("AWS_SECRET_ACCESS_KEY", "dynalite")
	tb.Setenv("AWS_SESSION_TOKEN", "")
	// A developer's shared config or profile must not override the above.
	tb.Setenv("AWS_PROFILE", "")
	tb.Setenv("AWS_CONFIG_FILE", filepath.Join(tb.TempDir(), "none"))
	tb.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(tb.TempDir(), "none"))
	return ep
}

// Install puts dynalite@Version into Dir unless it is there already. A file
// lock keeps parallel test processes (go test runs packages side by side)
// from running npm in the same directory at once.
func Install() (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file unlocks too
	if installed(dir) {
		return dir, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--no-save",
		"--prefix", dir, "dynalite@"+Version)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install dynalite@%s into %s: %w\n%s", Version, dir, err, out)
	}
	if !installed(dir) {
		return "", fmt.Errorf("npm install dynalite@%s into %s: package.json does not say version %s", Version, dir, Version)
	}
	return dir, nil
}

func installed(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "dynalite", "package.json"))
	return err == nil && strings.Contains(string(b), `"version": "`+Version+`"`)
}

// serverJS starts dynalite in memory on a port the kernel picks and prints it.
// It is the module's own API rather than cli.js, whose --port 0 means 4567,
// and it exits when its stdin closes, which happens however this test
// process ends (even killed), so no server outlives its tests.
const serverJS = `
const dynalite = require(process.argv[1]);
const srv = dynalite({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
srv.listen(0, '127.0.0.1', () => console.log('PORT ' + srv.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
`

func start() (string, chan struct{}, error) {
	dir, err := Install()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("node", "-e", serverJS, filepath.Join(dir, "node_modules", "dynalite"))
	// The pipe's write end stays open in this process for its whole life;
	// the kernel closes it when the process exits.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	keepStdin = stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start node: %w", err)
	}
	died := make(chan struct{})
	server.proc = cmd.Process
	go func() {
		err := cmd.Wait()
		server.why = fmt.Errorf("exited (%v) while tests ran; its stderr:\n%s", err, stderr.String())
		close(died)
	}()

	ports := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "PORT "); ok {
				ports <- p
			}
		}
	}()
	var port string
	select {
	case port = <-ports:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill() //nolint:errcheck // it failed to start anyway
		return "", nil, fmt.Errorf("dynalite did not report its port within 30s; stderr: %s", stderr.String())
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", nil, fmt.Errorf("dynalite reported port %q", port)
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", port)
	if err := waitAnswering(url); err != nil {
		return "", nil, err
	}
	return url, died, nil
}

// keepStdin holds dynalite's stdin open for as long as this process runs.
var keepStdin interface{ Close() error }

// lockedBuffer is dynalite's stderr, written by os/exec's copier and read
// by the tests.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitAnswering waits until dynalite answers HTTP; any answer will do (an
// unsigned request gets a DynamoDB error, which is an answer).
func waitAnswering(url string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Post(url, "application/x-amz-json-1.0", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("dynalite at %s does not answer", url), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
