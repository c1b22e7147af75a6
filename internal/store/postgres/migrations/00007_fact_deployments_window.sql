-- +goose Up
-- The successful deployments of a window, in the order Deployments returns
-- them, read from the index alone (an index-only scan): the DORA and
-- merge-request metrics read thousands of them per request.
CREATE INDEX fact_deployments_window ON fact_deployments (finished_at, id)
    INCLUDE (project_id, project_path, environment, status, ref, sha, web_url) WHERE status = 'success';
DROP INDEX fact_deployments_finished;

-- +goose Down
CREATE INDEX fact_deployments_finished ON fact_deployments (finished_at) WHERE status = 'success';
DROP INDEX fact_deployments_window;
