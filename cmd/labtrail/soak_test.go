package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// soakDuration is how long TestSoak keeps the world changing: 60 s in the
// normal suite, LABTRAIL_SOAK (say 9m, as `make soak` sets) for the full
// form.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("LABTRAIL_SOAK")
	if v == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("LABTRAIL_SOAK=%q: want a duration such as 9m", v)
	}
	return d
}

// TestSoak runs `labtrail serve` against the simulator with webhooks on,
// some dropped, duplicated and reordered, while the world changes, the
// poller polls and clients read the API; halfway through the process is
// killed with SIGKILL and started again. Once the world stops changing, the
// store must equal the simulator's truth with no delivery left pending,
// and the restarted process must hold no more file descriptors, and not
// much more memory, at the end of its steady phase than at its start.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs labtrail serve for a minute or more")
	}
	t.Parallel()
	total := soakDuration(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	const secret = "soak-secret"
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 77, Projects: 3, MRs: 30, Pipelines: 30,
		WebhookURL: base + "/api/v1/webhooks/gitlab", WebhookSecret: secret,
		DropRate: 0.1, DuplicateRate: 0.1, ReorderRate: 0.1})
	db := filepath.Join(t.TempDir(), "labtrail.db")

	start := func() (*exec.Cmd, *syncBuffer) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "serve", "--addr", addr, "--poll-interval", "2s")
		cmd.Env = append(os.Environ(), "LABTRAIL_E2E_MAIN=1", "GITLAB_URL="+simURL, "GITLAB_TOKEN="+simToken,
			"LABTRAIL_DB="+db, "LABTRAIL_LOG_LEVEL=warn", "REPOS=", "GROUPS=", "LABTRAIL_GROUPS=",
			"LABTRAIL_WEBHOOK_SECRET="+secret, "LABTRAIL_FULL_SWEEP=0", "LABTRAIL_REQUESTS_PER_MINUTE=100000")
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("labtrail serve (pid %d) output:\n%s", cmd.Process.Pid, logs.String())
			}
		})
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(logs.String(), "labtrail serving on"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("labtrail serve did not start:\n%s", logs.String())
			}
		}
		return cmd, logs
	}

	client := &http.Client{Timeout: 10 * time.Second}
	reads, readErrors := 0, 0
	// churn changes the world once a second (some 70 hooks a step: a busy
	// GitLab instance) and reads the API ten times as often, until d has
	// passed.
	churn := func(d time.Duration) {
		for end, step := time.Now().Add(d), 0; time.Now().Before(end); step++ {
			if step%10 == 0 {
				sim.Advance()
			}
			for _, path := range []string{"/api/v1/events?limit=100", "/api/v1/events?kind=merge_request&limit=50",
				"/api/v1/webhooks/deliveries?limit=50", "/api/v1/sync/status", "/api/v1/projects"} {
				resp, err := client.Get(base + path)
				reads++
				if err != nil || resp.StatusCode != http.StatusOK {
					readErrors++
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						t.Errorf("GET %s: %s %s", path, resp.Status, b)
					}
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	first, _ := start()
	churn(total / 2)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	// While it is down, the world goes on and its hooks fail.
	sim.Advance()
	second, _ := start()
	pid := second.Process.Pid
	// A first stretch lets the restarted process reach its working set
	// (pools, caches, the backlog of the kill) before the steady phase.
	churn(total / 8)
	fdsBefore, rssBefore := fdCount(t, pid), rssOf(t, pid)
	churn(total/2 - total/8)

	// The world stops; the simulator sends what it holds, the poller
	// repairs what was dropped, the queue converts what was stored.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sim.FlushWebhooks(ctx); err != nil {
		t.Fatalf("the simulator's webhooks were not all sent: %v", err)
	}
	var last string
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		last = ""
		for _, k := range change.Kinds {
			if d := diff(truthOf(sim, k), listAll(t, base, string(k))); d != "" {
				last += fmt.Sprintf("%s: %s; ", k, d)
			}
		}
		if n := pendingDeliveries(t, base); n > 0 {
			last += fmt.Sprintf("%d deliveries pending", n)
		}
		if last == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store never settled on the truth: %s\nsync status: %s\ndeliveries: %s",
				last, getBody(base+"/api/v1/sync/status"), getBody(base+"/api/v1/webhooks/deliveries?limit=3"))
		}
	}
	assertStoreEqualsTruth(t, sim, base)
	fdsAfter, rssAfter := fdCount(t, pid), rssOf(t, pid)
	hooks := sim.Deliveries()
	t.Logf("%s: %d hooks (%d dropped, %d duplicated, %d reordered, %d acknowledged, %d gave up), %d API reads (%d failed: the killed process's), %d events in the truth; after the restart fds %d -> %d, RSS %d -> %d MB",
		total, hooks.Hooks, hooks.Dropped, hooks.Duplicated, hooks.Reordered, hooks.Acknowledged, hooks.GaveUp,
		reads, readErrors, len(sim.Truth()), fdsBefore, fdsAfter, rssBefore>>20, rssAfter>>20)
	if hooks.Acknowledged == 0 || hooks.Dropped == 0 || hooks.Duplicated == 0 || hooks.Reordered == 0 {
		t.Errorf("the soak did not exercise every kind of delivery: %+v", hooks)
	}
	// Idle keep-alive connections come and go: a few descriptors either
	// way are noise, a leak per request or per delivery is not.
	if fdsAfter > fdsBefore+8 {
		t.Errorf("file descriptors grew from %d to %d over the steady phase", fdsBefore, fdsAfter)
	}
	if rssAfter > 2*rssBefore+64<<20 {
		t.Errorf("RSS grew from %d MB to %d MB over the steady phase", rssBefore>>20, rssAfter>>20)
	}
}

// getBody is the answer to GET u, for a failure's message.
func getBody(u string) string {
	resp, err := http.Get(u)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4000))
	return resp.Status + " " + string(b)
}

// pendingDeliveries counts GET /api/v1/webhooks/deliveries?status=pending.
func pendingDeliveries(t *testing.T, base string) int {
	t.Helper()
	var page struct {
		Deliveries []struct {
			ID int64 `json:"id"`
		} `json:"deliveries"`
	}
	getJSON(t, base+"/api/v1/webhooks/deliveries?status=pending&limit=1000", &page)
	return len(page.Deliveries)
}

// fdCount is how many file descriptors process pid holds.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return len(fds)
}

// rssOf is process pid's resident set in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
