-- +goose Up
ALTER TABLE projects ADD COLUMN status        text NOT NULL DEFAULT 'active';
ALTER TABLE projects ADD COLUMN status_detail text NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN status_at     timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00';

-- One row per GitLab API call (every attempt, retries included). id grows
-- with insertion, so it is both the newest-first order and the cursor.
CREATE TABLE audit (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                   timestamptz NOT NULL,
    method               text    NOT NULL,
    path                 text    NOT NULL,
    status               integer NOT NULL,
    duration_ns          bigint  NOT NULL,
    rate_limit_remaining integer NOT NULL,
    job                  text    NOT NULL,
    error                text    NOT NULL
);

CREATE INDEX audit_at  ON audit (at);
CREATE INDEX audit_job ON audit (job, id);

-- +goose Down
DROP TABLE audit;
ALTER TABLE projects DROP COLUMN status_at;
ALTER TABLE projects DROP COLUMN status_detail;
ALTER TABLE projects DROP COLUMN status;
