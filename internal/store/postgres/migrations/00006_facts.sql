-- +goose Up
-- Facts for the delivery metrics (internal/metrics): a few columns of each
-- merge request, note, deployment, environment, issue, pipeline and job,
-- written with its event in the same transaction (store.FactWrites), so a
-- metric reads narrow indexed rows instead of every event's JSON. Times are
-- timestamptz, 0001-01-01 for none, as in events.
CREATE TABLE fact_merge_requests (
    id               text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id        bigint  NOT NULL,
    project_path      text    NOT NULL,
    iid               bigint  NOT NULL,
    title             text    NOT NULL,
    author            text    NOT NULL,
    state             text    NOT NULL,
    target_branch     text    NOT NULL,
    web_url           text    NOT NULL,
    created_at        timestamptz NOT NULL,
    merged_at         timestamptz NOT NULL,
    first_commit_at   timestamptz NOT NULL,
    first_approval_at timestamptz NOT NULL,
    first_note_at     timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    additions         bigint  NOT NULL,
    deletions         bigint  NOT NULL,
    files             bigint  NOT NULL
);
-- In the order MergedMergeRequests returns them: no sort.
-- Covering: a window of merges over every project reads the index alone.
CREATE INDEX fact_mr_merged  ON fact_merge_requests (merged_at, id, project_id, project_path, iid, author, target_branch,
    created_at, first_commit_at, first_approval_at, first_note_at, additions, deletions, files);
CREATE INDEX fact_mr_project ON fact_merge_requests (project_id, merged_at);
CREATE INDEX fact_mr_iid     ON fact_merge_requests (project_id, iid);
CREATE INDEX fact_mr_open    ON fact_merge_requests (created_at) WHERE state = 'opened';

-- Non-system notes on merge requests only: the first review.
CREATE TABLE fact_notes (
    id        text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id bigint  NOT NULL,
    mr_iid     bigint  NOT NULL,
    author     text    NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX fact_notes_mr ON fact_notes (project_id, mr_iid, created_at);

CREATE TABLE fact_deployments (
    id          text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id   bigint  NOT NULL,
    project_path text    NOT NULL,
    environment  text    NOT NULL,
    status       text    NOT NULL,
    ref          text    NOT NULL,
    sha          text    NOT NULL,
    web_url      text    NOT NULL,
    finished_at  timestamptz NOT NULL
);
CREATE INDEX fact_deployments_finished ON fact_deployments (finished_at) WHERE status = 'success';
CREATE INDEX fact_deployments_project  ON fact_deployments (project_id, environment, finished_at) WHERE status = 'success';

CREATE TABLE fact_environments (
    id        text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id bigint  NOT NULL,
    name       text    NOT NULL,
    tier       text    NOT NULL
);
CREATE INDEX fact_environments_project ON fact_environments (project_id);

CREATE TABLE fact_issues (
    id          text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id   bigint  NOT NULL,
    project_path text    NOT NULL,
    iid          bigint  NOT NULL,
    title        text    NOT NULL,
    state        text    NOT NULL,
    issue_type   text    NOT NULL,
    labels       text    NOT NULL, -- JSON array
    web_url      text    NOT NULL,
    created_at   timestamptz NOT NULL,
    closed_at    timestamptz NOT NULL
);
CREATE INDEX fact_issues_created ON fact_issues (created_at, id, project_id, issue_type, labels, closed_at);
CREATE INDEX fact_issues_project ON fact_issues (project_id, created_at);

CREATE TABLE fact_pipelines (
    id             text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id      bigint  NOT NULL,
    ref             text    NOT NULL,
    sha             text    NOT NULL,
    status          text    NOT NULL,
    created_at      timestamptz NOT NULL,
    duration        double precision,
    queued_duration double precision
);
-- Covering, in the order Pipelines returns them.
CREATE INDEX fact_pipelines_created ON fact_pipelines (created_at, ref, status, duration, queued_duration);
CREATE INDEX fact_pipelines_project ON fact_pipelines (project_id, created_at);

CREATE TABLE fact_jobs (
    id            text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    project_id     bigint  NOT NULL,
    pipeline_id    bigint  NOT NULL,
    name           text    NOT NULL,
    stage          text    NOT NULL,
    status         text    NOT NULL,
    failure_reason text    NOT NULL,
    sha            text    NOT NULL,
    created_at     timestamptz NOT NULL
);
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
    version bigint  NOT NULL
);
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
