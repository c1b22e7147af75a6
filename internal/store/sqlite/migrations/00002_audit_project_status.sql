-- +goose Up
ALTER TABLE projects ADD COLUMN status        TEXT    NOT NULL DEFAULT 'active';
ALTER TABLE projects ADD COLUMN status_detail TEXT    NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN status_at     INTEGER NOT NULL DEFAULT 0;

-- One row per GitLab API call (every attempt, retries included). id grows
-- with insertion, so it is both the newest-first order and the cursor.
CREATE TABLE audit (
    id                   INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at                   INTEGER NOT NULL,
    method               TEXT    NOT NULL,
    path                 TEXT    NOT NULL,
    status               INTEGER NOT NULL,
    duration_ns          INTEGER NOT NULL,
    rate_limit_remaining INTEGER NOT NULL,
    job                  TEXT    NOT NULL,
    error                TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_at  ON audit (at);
CREATE INDEX audit_job ON audit (job, id);

-- +goose Down
DROP TABLE audit;
ALTER TABLE projects DROP COLUMN status_at;
ALTER TABLE projects DROP COLUMN status_detail;
ALTER TABLE projects DROP COLUMN status;
