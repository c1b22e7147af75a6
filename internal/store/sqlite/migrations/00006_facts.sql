-- +goose Up
-- Facts for the delivery metrics (internal/metrics): a few columns of each
-- merge request, note, deployment, environment, issue, pipeline and job,
-- written with its event in the same transaction (store.FactWrites), so a
-- metric reads narrow indexed rows instead of every event's JSON. Times are
-- unix nanoseconds, 0 for none, as in events.
CREATE TABLE fact_merge_requests (
    id                TEXT    NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id        INTEGER NOT NULL,
    project_path      TEXT    NOT NULL,
    iid               INTEGER NOT NULL,
    title             TEXT    NOT NULL,
    author            TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    target_branch     TEXT    NOT NULL,
    web_url           TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    merged_at         INTEGER NOT NULL,
    first_commit_at   INTEGER NOT NULL,
    first_approval_at INTEGER NOT NULL,
    first_note_at     INTEGER NOT NULL DEFAULT 0,
    additions         INTEGER NOT NULL,
    deletions         INTEGER NOT NULL,
    files             INTEGER NOT NULL
) STRICT;
-- In the order MergedMergeRequests returns them: no sort.
-- Covering: a window of merges over every project reads the index alone.
CREATE INDEX fact_mr_merged  ON fact_merge_requests (merged_at, id, project_id, project_path, iid, author, target_branch,
    created_at, first_commit_at, first_approval_at, first_note_at, additions, deletions, files);
CREATE INDEX fact_mr_project ON fact_merge_requests (project_id, merged_at);
CREATE INDEX fact_mr_iid     ON fact_merge_requests (project_id, iid);
CREATE INDEX fact_mr_open    ON fact_merge_requests (created_at) WHERE state = 'opened';

-- Non-system notes on merge requests only: the first review.
CREATE TABLE fact_notes (
    id         TEXT    NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL,
    mr_iid     INTEGER NOT NULL,
    author     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX fact_notes_mr ON fact_notes (project_id, mr_iid, created_at);

CREATE TABLE fact_deployments (
    id           TEXT    NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id   INTEGER NOT NULL,
    project_path TEXT    NOT NULL,
    environment  TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    ref          TEXT    NOT NULL,
    sha          TEXT    NOT NULL,
    web_url      TEXT    NOT NULL,
    finished_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX fact_deployments_finished ON fact_deployments (finished_at) WHERE status = 'success';
CREATE INDEX fact_deployments_project  ON fact_deployments (project_id, environment, finished_at) WHERE status = 'success';

CREATE TABLE fact_environments (
    id         TEXT    NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    tier       TEXT    NOT NULL
) STRICT;
CREATE INDEX fact_environments_project ON fact_environments (project_id);

CREATE TABLE fact_issues (
    id           TEXT    NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id   INTEGER NOT NULL,
    project_path TEXT    NOT NULL,
    iid          INTEGER NOT NULL,
    title        TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    issue_type   TEXT    NOT NULL,
    labels       TEXT    NOT NULL, -- JSON array
    web_url      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    closed_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX fact_issues_created ON fact_issues (created_at, id, project_id, issue_type, labels, closed_at);
CREATE INDEX fact_issues_project ON fact_issues (project_id, created_at);

CREATE TABLE fact_pipelines (
    id              TEXT    NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id      INTEGER NOT NULL,
    ref             TEXT    NOT NULL,
    sha             TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    duration        REAL,
    queued_duration REAL
) STRICT;
-- Covering, in the order Pipelines returns them.
CREATE INDEX fact_pipelines_created ON fact_pipelines (created_at, ref, status, duration, queued_duration);
CREATE INDEX fact_pipelines_project ON fact_pipelines (project_id, created_at);

CREATE TABLE fact_jobs (
    id             TEXT    NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id     INTEGER NOT NULL,
    pipeline_id    INTEGER NOT NULL,
    name           TEXT    NOT NULL,
    stage          TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    failure_reason TEXT    NOT NULL,
    sha            TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
-- A name's runs in a window, counted on the index alone.
CREATE INDEX fact_jobs_name    ON fact_jobs (name, created_at, project_id);
CREATE INDEX fact_jobs_project ON fact_jobs (project_id, name, created_at);
CREATE INDEX fact_jobs_runs    ON fact_jobs (project_id, sha, name, status, created_at);
-- The failures of a window by stage and reason, and the failed runs the
-- flaky check starts from, read from the few failed jobs only.
CREATE INDEX fact_jobs_failed  ON fact_jobs (created_at, project_id, sha, name, stage, failure_reason) WHERE status = 'failed';

-- Which rule derived the facts (store.FactsVersion): a store whose facts
-- are older derives them again from the events when opened.
CREATE TABLE fact_version (
    version INTEGER NOT NULL
) STRICT;
INSERT INTO fact_version (version) VALUES (0);

-- +goose Down
DROP TABLE fact_version;
DROP TABLE fact_jobs;
DROP TABLE fact_pipelines;
DROP TABLE fact_issues;
DROP TABLE fact_environments;
DROP TABLE fact_deployments;
DROP TABLE fact_notes;
DROP TABLE fact_merge_requests;
