-- +goose Up
-- Two things the pipeline health of a window over every project reads
-- instead of counting fact_jobs run by run.
--
-- The jobs of each UTC day counted by name, stage, status and failure
-- reason, over every project: the pipeline health of a window over every
-- project counts its whole days here (a few hundred rows) and reads
-- fact_jobs only for the partial days at its edges, instead of counting
-- hundreds of thousands of runs. Triggers keep it, in the transaction
-- that writes the job, whatever writes it (an upsert, a rebuild of the
-- facts, a delete cascading from the event). day is the day's start in
-- unix nanoseconds, like created_at. SQLite has one writer at a time, so
-- the counters are never contended; PostgreSQL counts from fact_jobs.
CREATE TABLE fact_job_days (
    day            INTEGER NOT NULL,
    name           TEXT    NOT NULL,
    stage          TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    failure_reason TEXT    NOT NULL,
    runs           INTEGER NOT NULL,
    PRIMARY KEY (day, name, stage, status, failure_reason)
) STRICT, WITHOUT ROWID;

INSERT INTO fact_job_days (day, name, stage, status, failure_reason, runs)
SELECT created_at - ((created_at % 86400000000000) + 86400000000000) % 86400000000000,
       name, stage, status, failure_reason, COUNT(*)
FROM fact_jobs GROUP BY 1, 2, 3, 4, 5;

-- The partial days at a window's edges, counted on this index alone.
CREATE INDEX fact_jobs_created ON fact_jobs (created_at, name, stage, status, failure_reason);

-- +goose StatementBegin
CREATE TRIGGER fact_job_days_insert AFTER INSERT ON fact_jobs BEGIN
    INSERT INTO fact_job_days (day, name, stage, status, failure_reason, runs)
    VALUES (NEW.created_at - ((NEW.created_at % 86400000000000) + 86400000000000) % 86400000000000,
            NEW.name, NEW.stage, NEW.status, NEW.failure_reason, 1)
    ON CONFLICT DO UPDATE SET runs = runs + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER fact_job_days_delete AFTER DELETE ON fact_jobs BEGIN
    UPDATE fact_job_days SET runs = runs - 1
    WHERE day = OLD.created_at - ((OLD.created_at % 86400000000000) + 86400000000000) % 86400000000000
      AND name = OLD.name AND stage = OLD.stage AND status = OLD.status AND failure_reason = OLD.failure_reason;
    DELETE FROM fact_job_days
    WHERE day = OLD.created_at - ((OLD.created_at % 86400000000000) + 86400000000000) % 86400000000000
      AND name = OLD.name AND stage = OLD.stage AND status = OLD.status AND failure_reason = OLD.failure_reason
      AND runs <= 0;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER fact_job_days_update AFTER UPDATE OF created_at, name, stage, status, failure_reason ON fact_jobs
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.name IS NOT NEW.name OR OLD.stage IS NOT NEW.stage
  OR OLD.status IS NOT NEW.status OR OLD.failure_reason IS NOT NEW.failure_reason
BEGIN
    UPDATE fact_job_days SET runs = runs - 1
    WHERE day = OLD.created_at - ((OLD.created_at % 86400000000000) + 86400000000000) % 86400000000000
      AND name = OLD.name AND stage = OLD.stage AND status = OLD.status AND failure_reason = OLD.failure_reason;
    DELETE FROM fact_job_days
    WHERE day = OLD.created_at - ((OLD.created_at % 86400000000000) + 86400000000000) % 86400000000000
      AND name = OLD.name AND stage = OLD.stage AND status = OLD.status AND failure_reason = OLD.failure_reason
      AND runs <= 0;
    INSERT INTO fact_job_days (day, name, stage, status, failure_reason, runs)
    VALUES (NEW.created_at - ((NEW.created_at % 86400000000000) + 86400000000000) % 86400000000000,
            NEW.name, NEW.stage, NEW.status, NEW.failure_reason, 1)
    ON CONFLICT DO UPDATE SET runs = runs + 1;
END;
-- +goose StatementEnd

-- Whether a failed run is flaky: a later run of the same name on the same
-- project and sha succeeded. Kept by triggers like fact_job_days: each
-- change to a run sets the flags of its group (project, sha, name), a few
-- runs read on fact_jobs_runs. The flaky-job count of a window then reads
-- the flaky failed runs alone, instead of looking for a later success of
-- every failed run of the window.
ALTER TABLE fact_jobs ADD COLUMN flaky INTEGER NOT NULL DEFAULT 0;
UPDATE fact_jobs SET flaky = 1 WHERE status = 'failed' AND EXISTS (
    SELECT 1 FROM fact_jobs ok WHERE ok.project_id = fact_jobs.project_id AND ok.sha = fact_jobs.sha
    AND ok.name = fact_jobs.name AND ok.status = 'success' AND ok.created_at > fact_jobs.created_at);
CREATE INDEX fact_jobs_flaky ON fact_jobs (created_at, name, project_id, sha) WHERE status = 'failed' AND flaky = 1;

-- +goose StatementBegin
CREATE TRIGGER fact_jobs_flaky_insert AFTER INSERT ON fact_jobs BEGIN
    UPDATE fact_jobs SET flaky = (status = 'failed' AND EXISTS (
        SELECT 1 FROM fact_jobs ok WHERE ok.project_id = fact_jobs.project_id AND ok.sha = fact_jobs.sha
        AND ok.name = fact_jobs.name AND ok.status = 'success' AND ok.created_at > fact_jobs.created_at))
    WHERE project_id = NEW.project_id AND sha = NEW.sha AND name = NEW.name;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER fact_jobs_flaky_delete AFTER DELETE ON fact_jobs BEGIN
    UPDATE fact_jobs SET flaky = (status = 'failed' AND EXISTS (
        SELECT 1 FROM fact_jobs ok WHERE ok.project_id = fact_jobs.project_id AND ok.sha = fact_jobs.sha
        AND ok.name = fact_jobs.name AND ok.status = 'success' AND ok.created_at > fact_jobs.created_at))
    WHERE project_id = OLD.project_id AND sha = OLD.sha AND name = OLD.name;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER fact_jobs_flaky_update AFTER UPDATE OF project_id, sha, name, status, created_at ON fact_jobs
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.sha IS NOT NEW.sha OR OLD.name IS NOT NEW.name
  OR OLD.status IS NOT NEW.status OR OLD.created_at IS NOT NEW.created_at
BEGIN
    UPDATE fact_jobs SET flaky = (status = 'failed' AND EXISTS (
        SELECT 1 FROM fact_jobs ok WHERE ok.project_id = fact_jobs.project_id AND ok.sha = fact_jobs.sha
        AND ok.name = fact_jobs.name AND ok.status = 'success' AND ok.created_at > fact_jobs.created_at))
    WHERE (project_id = OLD.project_id AND sha = OLD.sha AND name = OLD.name)
       OR (project_id = NEW.project_id AND sha = NEW.sha AND name = NEW.name);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER fact_jobs_flaky_update;
DROP TRIGGER fact_jobs_flaky_delete;
DROP TRIGGER fact_jobs_flaky_insert;
DROP INDEX fact_jobs_flaky;
ALTER TABLE fact_jobs DROP COLUMN flaky;
DROP TRIGGER fact_job_days_update;
DROP TRIGGER fact_job_days_delete;
DROP TRIGGER fact_job_days_insert;
DROP INDEX fact_jobs_created;
DROP TABLE fact_job_days;
