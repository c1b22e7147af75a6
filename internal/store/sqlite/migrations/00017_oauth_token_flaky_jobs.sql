-- +goose Up
-- A GitLab sign-in's OAuth token (issue 14), sealed (AES-256-GCM; nonce
-- then ciphertext) under the secret key whose id is beside it, so that
-- the session survives a restart and moves between replicas. Empty when
-- no key is configured: the token is then in the memory of the process
-- that signed in only.
ALTER TABLE sessions ADD COLUMN token_key TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN token_sealed BLOB NOT NULL DEFAULT x'';

-- A failed job is flaky when a later run of its name on its project and
-- commit passed in its own GitLab connection: two GitLabs may both have a
-- project of one id and, a mirror, one commit. A job's id up to its first
-- hyphen names its connection ("job-", "second:job-"). The flags are set
-- again as the facts are derived again (FactsVersion 3).
DROP TRIGGER fact_jobs_flaky_insert;
DROP TRIGGER fact_jobs_flaky_delete;
DROP TRIGGER fact_jobs_flaky_update;

-- +goose StatementBegin
CREATE TRIGGER fact_jobs_flaky_insert AFTER INSERT ON fact_jobs BEGIN
    UPDATE fact_jobs SET flaky = (status = 'failed' AND EXISTS (
        SELECT 1 FROM fact_jobs ok WHERE ok.project_id = fact_jobs.project_id AND ok.sha = fact_jobs.sha
        AND ok.name = fact_jobs.name AND ok.status = 'success' AND ok.created_at > fact_jobs.created_at
        AND substr(ok.id, 1, instr(ok.id, '-')) = substr(fact_jobs.id, 1, instr(fact_jobs.id, '-'))))
    WHERE project_id = NEW.project_id AND sha = NEW.sha AND name = NEW.name;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER fact_jobs_flaky_delete AFTER DELETE ON fact_jobs BEGIN
    UPDATE fact_jobs SET flaky = (status = 'failed' AND EXISTS (
        SELECT 1 FROM fact_jobs ok WHERE ok.project_id = fact_jobs.project_id AND ok.sha = fact_jobs.sha
        AND ok.name = fact_jobs.name AND ok.status = 'success' AND ok.created_at > fact_jobs.created_at
        AND substr(ok.id, 1, instr(ok.id, '-')) = substr(fact_jobs.id, 1, instr(fact_jobs.id, '-'))))
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
        AND ok.name = fact_jobs.name AND ok.status = 'success' AND ok.created_at > fact_jobs.created_at
        AND substr(ok.id, 1, instr(ok.id, '-')) = substr(fact_jobs.id, 1, instr(fact_jobs.id, '-'))))
    WHERE (project_id = OLD.project_id AND sha = OLD.sha AND name = OLD.name)
       OR (project_id = NEW.project_id AND sha = NEW.sha AND name = NEW.name);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER fact_jobs_flaky_insert;
DROP TRIGGER fact_jobs_flaky_delete;
DROP TRIGGER fact_jobs_flaky_update;

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

ALTER TABLE sessions DROP COLUMN token_sealed;
ALTER TABLE sessions DROP COLUMN token_key;
