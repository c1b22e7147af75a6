package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// BenchmarkBootstrapSize builds the function as it is deployed (linux,
// arm64, -tags lambda.norpc) plain and stripped (make lambda) and reports
// the sizes:
//
//	go test -run '^$' -bench BootstrapSize -benchtime 1x ./cmd/labtrail-lambda/
func BenchmarkBootstrapSize(b *testing.B) {
	dir := b.TempDir()
	for range b.N {
		for _, v := range []struct {
			name  string
			flags []string
		}{{"plain", nil}, {"stripped", []string{"-ldflags=-s -w", "-trimpath"}}} {
			out := filepath.Join(dir, "bootstrap-"+v.name)
			args := append([]string{"build", "-tags", "lambda.norpc"}, v.flags...)
			cmd := exec.Command("go", append(args, "-o", out, ".")...)
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, o)
			}
			st, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.Size())/1e6, v.name+"-MB")
		}
	}
}

// BenchmarkScheduledPass measures what the scheduled passes of 10 small
// projects cost: the backfill, a quiet pass (nothing changed), and a pass
// after activity on every project, in GitLab requests, DynamoDB requests
// and estimated request units (docs/serverless.md's cost table):
//
//	go test -run '^$' -bench ScheduledPass -benchtime 1x -v ./cmd/labtrail-lambda/
func BenchmarkScheduledPass(b *testing.B) {
	for range b.N {
		r := newRig(b, gitlabsim.Options{Seed: 21, Projects: 10, MRs: 10, Pipelines: 10}, false)
		r.sim.ResetStats()
		backfill := r.f.sync(b, 10*time.Minute)
		bd, bg := r.dynamo.take(), r.sim.Stats().Requests
		r.sim.ResetStats()
		quiet := r.f.sync(b, time.Minute)
		qd, qg := r.dynamo.take(), r.sim.Stats().Requests
		r.sim.Advance()
		r.sim.ResetStats()
		active := r.f.sync(b, time.Minute)
		ad, ag := r.dynamo.take(), r.sim.Stats().Requests
		// The full sweep (every 6 hours by default) walks every kind of
		// every project whatever its activity: a cold start told to
		// sweep on every pass shows what one costs.
		r.restart(b, map[string]string{"LABTRAIL_FULL_SWEEP": "0"})
		r.dynamo.take()
		r.sim.ResetStats()
		sweep := r.f.sync(b, time.Minute)
		sd, sg := r.dynamo.take(), r.sim.Stats().Requests
		if !backfill.Complete || !quiet.Complete || !active.Complete || !sweep.Complete {
			b.Fatalf("passes: %+v %+v %+v %+v", backfill, quiet, active, sweep)
		}
		b.Logf("10 projects, backfill (%d stored): %d ms, %d GitLab requests, DynamoDB %s", backfill.Stored, backfill.DurationMS, bg, bd)
		b.Logf("10 projects, quiet pass: %d ms, %d GitLab requests, DynamoDB %s", quiet.DurationMS, qg, qd)
		b.Logf("10 projects, pass after one round of activity (%d stored): %d ms, %d GitLab requests, DynamoDB %s", active.Stored, active.DurationMS, ag, ad)
		b.Logf("10 projects, full sweep pass, nothing changed: %d ms, %d GitLab requests, DynamoDB %s", sweep.DurationMS, sg, sd)
		b.ReportMetric(float64(qd.Requests), "quiet-dynamodb-requests")
		b.ReportMetric(float64(ad.Requests), "active-dynamodb-requests")
	}
}

// BenchmarkColdStart starts the bootstrap afresh and times it to its
// first answer (a read of the sync status), under the local Runtime API:
// process start, the three SSM parameters (one GetParameters request), the
// store, the read.
//
//	go test -run '^$' -bench ColdStart -benchtime 20x ./cmd/labtrail-lambda/
func BenchmarkColdStart(b *testing.B) {
	r := newRig(b, gitlabsim.Options{Seed: 4, Projects: 1, MRs: 2, Pipelines: 2}, false)
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		r.restart(b, nil)
		if resp := r.f.http(b, "GET", "/api/v1/sync/status", "", bearer(apiToken), nil, false); resp.StatusCode != 200 {
			b.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
		took = append(took, time.Since(r.f.started))
		_ = r.f.cmd.Process.Kill()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-max")
}
