-- +goose Up
-- Sessions signed in with GitLab (issue 14): kind is token or oauth; an
-- oauth session carries the GitLab user's id (name holds the username),
-- the ids of the projects the user may see, as a JSON array ('' when the
-- session sees every project: token sessions and admins), and when that
-- list is to be read again from GitLab (unix nanoseconds; 0 never).
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'token';
ALTER TABLE sessions ADD COLUMN user_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN projects TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN projects_until INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE sessions DROP COLUMN projects_until;
ALTER TABLE sessions DROP COLUMN projects;
ALTER TABLE sessions DROP COLUMN user_id;
ALTER TABLE sessions DROP COLUMN kind;
