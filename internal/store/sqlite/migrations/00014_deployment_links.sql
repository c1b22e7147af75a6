-- +goose Up
-- Deployments reported to labtrail's API (source api) beside GitLab's own:
-- a report linked to GitLab's deployment of the same job (or of the same
-- sha within minutes) names it in duplicate_of, and the metrics read only
-- rows without one, so the two count once. The facts are derived again
-- (FactsVersion 2) to fill the new columns.
ALTER TABLE fact_deployments ADD COLUMN source       TEXT    NOT NULL DEFAULT 'gitlab';
ALTER TABLE fact_deployments ADD COLUMN job_id       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fact_deployments ADD COLUMN occurred_at  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fact_deployments ADD COLUMN duplicate_of TEXT    NOT NULL DEFAULT '';
DROP INDEX fact_deployments_window;
-- duplicate_of is in the indexes too, so the reads of the metrics stay
-- on the index alone (SQLite checks the term against the row otherwise).
CREATE INDEX fact_deployments_window ON fact_deployments (finished_at, id, project_id, project_path, environment,
    status, ref, sha, web_url, duplicate_of) WHERE status = 'success' AND duplicate_of = '';
DROP INDEX fact_deployments_project;
CREATE INDEX fact_deployments_project ON fact_deployments (project_id, environment, finished_at, status, duplicate_of)
    WHERE status = 'success' AND duplicate_of = '';
CREATE INDEX fact_deployments_job ON fact_deployments (project_id, environment, job_id) WHERE job_id <> 0;
CREATE INDEX fact_deployments_sha ON fact_deployments (project_id, environment, sha, occurred_at);
CREATE INDEX fact_deployments_duplicate ON fact_deployments (duplicate_of) WHERE duplicate_of <> '';

-- +goose Down
DROP INDEX fact_deployments_duplicate;
DROP INDEX fact_deployments_sha;
DROP INDEX fact_deployments_job;
DROP INDEX fact_deployments_project;
CREATE INDEX fact_deployments_project ON fact_deployments (project_id, environment, finished_at) WHERE status = 'success';
DROP INDEX fact_deployments_window;
CREATE INDEX fact_deployments_window ON fact_deployments (finished_at, id, project_id, project_path, environment,
    status, ref, sha, web_url) WHERE status = 'success';
ALTER TABLE fact_deployments DROP COLUMN duplicate_of;
ALTER TABLE fact_deployments DROP COLUMN occurred_at;
ALTER TABLE fact_deployments DROP COLUMN job_id;
ALTER TABLE fact_deployments DROP COLUMN source;
DELETE FROM fact_version;
