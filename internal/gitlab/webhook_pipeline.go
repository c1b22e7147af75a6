package gitlab

import (
	"fmt"
	"math"

	"github.com/labtrail/labtrail/internal/change"
)

type hookBuild struct {
	ID             int64     `json:"id"`
	Stage          string    `json:"stage"`
	Name           string    `json:"name"`
	Status         string    `json:"status"`
	CreatedAt      hookTime  `json:"created_at"`
	StartedAt      hookTime  `json:"started_at"`
	FinishedAt     hookTime  `json:"finished_at"`
	Duration       *float64  `json:"duration"`
	QueuedDuration *float64  `json:"queued_duration"`
	AllowFailure   bool      `json:"allow_failure"`
	FailureReason  *string   `json:"failure_reason"`
	User           *hookUser `json:"user"`
}

type pipelineHook struct {
	User             *hookUser `json:"user"`
	ObjectAttributes *struct {
		ID             int64    `json:"id"`
		IID            int64    `json:"iid"`
		Name           string   `json:"name"`
		Ref            string   `json:"ref"`
		Tag            bool     `json:"tag"`
		SHA            string   `json:"sha"`
		Source         string   `json:"source"`
		Status         string   `json:"status"`
		DetailedStatus string   `json:"detailed_status"`
		Stages         []string `json:"stages"`
		CreatedAt      hookTime `json:"created_at"`
		FinishedAt     hookTime `json:"finished_at"`
		Duration       *float64 `json:"duration"`
		QueuedDuration *float64 `json:"queued_duration"`
		URL            string   `json:"url"`
	} `json:"object_attributes"`
	Builds []hookBuild `json:"builds"`
}

func (ph *pipelineHook) check() error {
	if ph.ObjectAttributes == nil || ph.ObjectAttributes.ID == 0 {
		return malformed("pipeline hook without object_attributes.id")
	}
	return nil
}

func floatOr0(f *float64) float64 {
	if f == nil || math.IsNaN(*f) || math.IsInf(*f, 0) {
		return 0
	}
	return *f
}

func strOr0(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// parsePipeline: the pipeline and one job event per build. The payload
// has no updated_at; the latest time it shows (created, finished, and
// every job's created/started/finished) stands in. GitLab touches a
// pipeline's updated_at at each of those moments, so the stand-in is at
// most the real one and the poller's version, when it comes, wins.
func parsePipeline(h *hookCtx, ph *pipelineHook) error {
	oa := ph.ObjectAttributes
	pid := h.p.ID
	created, finished := oa.CreatedAt.Time, oa.FinishedAt.Time
	updated := latest(created, finished)
	for _, b := range ph.Builds {
		updated = latest(updated, b.CreatedAt.Time, b.StartedAt.Time, b.FinishedAt.Time)
	}
	if updated.IsZero() {
		return malformed("pipeline %d without any timestamp", oa.ID)
	}
	webURL := oa.URL
	if webURL == "" && h.p.WebURL != "" {
		webURL = fmt.Sprintf("%s/-/pipelines/%d", h.p.WebURL, oa.ID)
	}
	ev := pipelineEvent(h.p, pipelineFields{
		id: oa.ID, iid: oa.IID, projectID: pid, status: oa.Status, source: oa.Source,
		ref: oa.Ref, sha: oa.SHA, name: oa.Name, webURL: webURL,
		created: created, updated: updated, finished: finished,
	})
	if ph.User != nil {
		ev.Author = ph.User.Username
		ev.Attrs["user"] = ph.User.Username
	}
	ev.Attrs["duration"] = int64(math.Round(floatOr0(oa.Duration)))
	ev.Attrs["queued_duration"] = int64(math.Round(floatOr0(oa.QueuedDuration)))
	ev.Attrs["detailed_status"] = oa.DetailedStatus
	ev.Attrs["tag"] = oa.Tag
	if oa.Stages != nil {
		ev.Attrs["stages"] = oa.Stages
	}

	builds := make([]jobData, 0, len(ph.Builds))
	jobs := make([]change.Event, 0, len(ph.Builds))
	for _, b := range ph.Builds {
		if b.ID == 0 {
			return malformed("pipeline %d with a build without id", oa.ID)
		}
		jd := h.job(jobData{
			id: b.ID, name: b.Name, stage: b.Stage, status: b.Status,
			failureReason: strOr0(b.FailureReason), duration: floatOr0(b.Duration),
			queued: floatOr0(b.QueuedDuration), pipelineID: oa.ID, allowFailure: b.AllowFailure,
			created: b.CreatedAt.Time, started: b.StartedAt.Time, finished: b.FinishedAt.Time,
			ref: oa.Ref, sha: oa.SHA,
		})
		je := jobEvent(h.p, jd, b.User.username())
		if je.UpdatedAt.IsZero() {
			je.UpdatedAt, je.OccurredAt = updated, updated
		}
		builds = append(builds, jd)
		jobs = append(jobs, je)
	}
	if oa.Status == "failed" {
		ev.Attrs["failed_jobs"] = failedJobs(builds)
	}
	h.emit(ev)
	for _, je := range jobs {
		h.emit(je)
	}
	if oa.Status == "failed" {
		h.needs(ev.ID)
	}
	return nil
}

// job completes a job a payload describes with its web URL, which the
// payloads leave out.
func (h *hookCtx) job(j jobData) jobData {
	if h.p.WebURL != "" {
		j.webURL = fmt.Sprintf("%s/-/jobs/%d", h.p.WebURL, j.id)
	}
	return j
}

type jobHook struct {
	Ref                 string    `json:"ref"`
	SHA                 string    `json:"sha"`
	BuildID             int64     `json:"build_id"`
	BuildName           string    `json:"build_name"`
	BuildStage          string    `json:"build_stage"`
	BuildStatus         string    `json:"build_status"`
	BuildCreatedAt      hookTime  `json:"build_created_at"`
	BuildStartedAt      hookTime  `json:"build_started_at"`
	BuildFinishedAt     hookTime  `json:"build_finished_at"`
	BuildCreatedAtISO   hookTime  `json:"build_created_at_iso"`
	BuildStartedAtISO   hookTime  `json:"build_started_at_iso"`
	BuildFinishedAtISO  hookTime  `json:"build_finished_at_iso"`
	BuildDuration       *float64  `json:"build_duration"`
	BuildQueuedDuration *float64  `json:"build_queued_duration"`
	BuildAllowFailure   bool      `json:"build_allow_failure"`
	BuildFailureReason  *string   `json:"build_failure_reason"`
	PipelineID          int64     `json:"pipeline_id"`
	User                *hookUser `json:"user"`
}

func (jh *jobHook) check() error {
	if jh.BuildID == 0 {
		return malformed("job hook without build_id")
	}
	return nil
}

// parseJob: the job. The *_iso times (GitLab 15.x+) carry the same
// instants as the older fields; they are preferred where present.
func parseJob(h *hookCtx, jh *jobHook) error {
	je := jobEvent(h.p, h.job(jobData{
		id: jh.BuildID, name: jh.BuildName, stage: jh.BuildStage, status: jh.BuildStatus,
		failureReason: strOr0(jh.BuildFailureReason), duration: floatOr0(jh.BuildDuration),
		queued: floatOr0(jh.BuildQueuedDuration), pipelineID: jh.PipelineID,
		allowFailure: jh.BuildAllowFailure,
		created:      firstSet(jh.BuildCreatedAtISO.Time, jh.BuildCreatedAt.Time),
		started:      firstSet(jh.BuildStartedAtISO.Time, jh.BuildStartedAt.Time),
		finished:     firstSet(jh.BuildFinishedAtISO.Time, jh.BuildFinishedAt.Time),
		ref:          jh.Ref, sha: jh.SHA,
	}), jh.User.username())
	if je.UpdatedAt.IsZero() {
		h.needs(je.ID)
		return nil
	}
	h.emit(je)
	return nil
}
