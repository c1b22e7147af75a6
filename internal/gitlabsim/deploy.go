package gitlabsim

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

type environment struct {
	id         int64
	name       string
	tier       string // production, staging, development
	state      string // available, stopping, stopped
	mr         *mergeRequest
	createdAt  time.Time
	updatedAt  time.Time
	autoStopAt time.Time
	// externalURL is what the environments API last wrote (written);
	// otherwise the URL follows from the tier.
	externalURL string
	written     bool
}

func (e *environment) slug() string {
	s := strings.Trim(slug(e.name), "-")
	if len(s) > 17 {
		s = strings.TrimRight(s[:17], "-")
	}
	if e.tier == "development" && e.mr != nil {
		// GitLab appends a short hash when the slug had to be shortened
		// or changed.
		s += "-" + e.mr.p.sha(uint64(e.id), 9)[:6]
	}
	return s
}

// deployment is the deployment of a default-branch pipeline's last job.
type deployment struct {
	id, iid    int64
	pl         *pipeline
	env        *environment
	status     string // created, running, success, failed, canceled, skipped
	createdAt  time.Time
	updatedAt  time.Time
	finishedAt time.Time
	triaged    bool // whether an incident was decided on (wentWrong)
}

func cmpDeploy(a, b *deployment) int {
	if c := a.updatedAt.Compare(b.updatedAt); c != 0 {
		return c
	}
	return cmpInt(a.id, b.id)
}

// historyEnvironments gives p production and staging, available since the
// project began, and review apps for a few recent MRs: available while the
// MR is open, stopped once it was merged or closed.
func (w *world) historyEnvironments(p *project, now time.Time) []*environment {
	at := p.root.Add(time.Hour)
	envs := []*environment{
		{id: w.nextEnvID, name: "production", tier: "production", state: "available", createdAt: at, updatedAt: at},
		{id: w.nextEnvID + 1, name: "staging", tier: "staging", state: "available", createdAt: at, updatedAt: at},
	}
	w.nextEnvID += 2
	var open, done int
	for i := len(p.mrs) - 1; i >= 0 && (open < 3 || done < 2); i-- {
		m := p.mrs[i]
		switch {
		case m.state == "opened" && open < 3:
			open++
		case m.state != "opened" && done < 2:
			done++
		default:
			continue
		}
		t := earliest(ms(m.createdAt.Add(10*time.Minute)), now)
		e := &environment{id: w.nextEnvID, name: "review/" + m.sourceBranch, tier: "development", state: "available", mr: m, createdAt: t, updatedAt: t}
		w.nextEnvID++
		e.autoStopAt = t.Add(7 * 24 * time.Hour)
		if m.state != "opened" {
			e.state, e.autoStopAt = "stopped", time.Time{}
			e.updatedAt = latest(t, m.mergedAt, m.closedAt)
		}
		envs = append(envs, e)
	}
	// Review environments were created in MR order; keep ids in that order.
	slices.SortStableFunc(envs[2:], func(a, b *environment) int { return a.createdAt.Compare(b.createdAt) })
	for i, e := range envs[2:] {
		e.id = envs[1].id + 1 + int64(i)
	}
	return envs
}

func (w *world) newReview(p *project, m *mergeRequest, t time.Time) {
	e := &environment{id: w.nextEnvID, name: "review/" + m.sourceBranch, tier: "development", state: "available", mr: m, createdAt: t, updatedAt: t, autoStopAt: t.Add(7 * 24 * time.Hour)}
	w.nextEnvID++
	p.envs = append(p.envs, e)
}

// stopReview stops m's review app, if it has one, when m is merged or
// closed at t.
func (w *world) stopReview(p *project, m *mergeRequest, t time.Time) {
	for _, e := range p.envs {
		if e.mr == m && e.state == "available" {
			e.state, e.autoStopAt, e.updatedAt = "stopped", time.Time{}, t
		}
	}
}

func (p *project) envFor(pl *pipeline) *environment {
	if pl.deployJobName() == "deploy-staging" {
		return p.envs[1]
	}
	return p.envs[0]
}

// historyDeployment records the deployment of a default-branch pipeline,
// created with its jobs and following its deploy job: success when the
// pipeline succeeded, failed when the deploy job failed, skipped when an
// earlier stage failed, canceled with the pipeline, created while it runs.
func (w *world) historyDeployment(pl *pipeline) *deployment {
	p := pl.p
	if pl.ref != p.defaultBranch() || len(p.envs) < 2 {
		return nil
	}
	d := &deployment{id: w.nextDeployID, iid: int64(len(p.deploys) + 1), pl: pl, env: p.envFor(pl), status: "created", createdAt: pl.createdAt, updatedAt: pl.createdAt}
	w.nextDeployID++
	switch pl.status {
	case "success":
		jobs := pl.jobs()
		d.status, d.finishedAt = "success", jobs[len(jobs)-1].finishedAt
		d.updatedAt = d.finishedAt
	case "failed":
		d.status, d.updatedAt = "skipped", pl.updatedAt
		if pl.failedDeploying() {
			jobs := pl.jobs()
			d.status, d.finishedAt = "failed", jobs[len(jobs)-1].finishedAt
			d.updatedAt = d.finishedAt
		}
	case "canceled":
		d.status, d.finishedAt, d.updatedAt = "canceled", pl.finishedAt, pl.updatedAt
	}
	p.deploys = append(p.deploys, d)
	if d.updatedAt.After(d.env.updatedAt) {
		d.env.updatedAt = d.updatedAt
	}
	if d.status == "success" {
		if rp := firstRepo(p); rp != nil {
			rp.push(pl.sha[:8], d.finishedAt)
		}
	}
	return d
}

// lastDeployment is GitLab's Environment#last_deployment: of the
// successful deployments to e, the one that finished last.
func (p *project) lastDeployment(e *environment) *deployment {
	var last *deployment
	for _, d := range p.deploys {
		if d.env == e && d.status == "success" && (last == nil || !d.finishedAt.Before(last.finishedAt)) {
			last = d
		}
	}
	return last
}

func (p *project) deploymentOf(pl *pipeline) *deployment {
	for i := len(p.deploys) - 1; i >= 0; i-- {
		if p.deploys[i].pl == pl {
			return p.deploys[i]
		}
	}
	return nil
}

// setDeploy moves d to status at t, keeping the updated_at index and the
// environment in step.
func (p *project) setDeploy(d *deployment, status string, t time.Time) {
	p.deploysUpd = removeDeploy(p.deploysUpd, d)
	d.status, d.updatedAt = status, t
	if status == "success" || status == "failed" || status == "canceled" {
		d.finishedAt = t
	}
	p.deploysUpd = append(p.deploysUpd, d)
	d.env.updatedAt = t
}

// failedDeploying reports whether pl failed in its deploy job.
func (pl *pipeline) failedDeploying() bool {
	return pl.status == "failed" && pl.stageOf(pl.failIdx) == 2
}

// pipelineFinished starts the deployment of a default-branch pipeline that
// succeeded (it finishes over the next steps), fails it when the deploy
// job failed and skips it otherwise.
func (w *world) pipelineFinished(r *rand.Rand, pl *pipeline, now time.Time) {
	p := pl.p
	d := p.deploymentOf(pl)
	if d == nil {
		return
	}
	switch {
	case pl.status == "success":
		p.setDeploy(d, "running", p.next(now))
	case pl.failedDeploying():
		p.setDeploy(d, "failed", p.next(now))
	default:
		p.setDeploy(d, "skipped", p.next(now))
	}
}

// advanceDeployments finishes the deployments that were running: their
// deploy job passed, so they succeed and push an image of their commit.
// (A deployment fails with its deploy job, in pipelineFinished.)
func (w *world) advanceDeployments(r *rand.Rand, p *project, now time.Time) {
	for _, d := range slices.Clone(p.deploysUpd) {
		if d.status != "running" {
			continue
		}
		t := p.next(now)
		p.setDeploy(d, "success", t)
		if rp := firstRepo(p); rp != nil {
			rp.push(d.pl.sha[:8], p.next(now))
		}
	}
}

func removeDeploy(s []*deployment, d *deployment) []*deployment {
	i, ok := slices.BinarySearchFunc(s, d, cmpDeploy)
	if !ok {
		i = slices.Index(s, d)
	}
	if i < 0 {
		return s
	}
	return slices.Delete(s, i, i+1)
}
