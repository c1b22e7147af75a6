-- +goose Up
-- GitLab connections beyond the default one the environment describes
-- (issue 14). The token and the webhook secret are sealed (AES-256-GCM;
-- nonce then ciphertext) under the key whose id is kept beside each: the
-- plaintext is never stored. Times are unix nanoseconds.
CREATE TABLE connections (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    url                 TEXT    NOT NULL,
    token_key           TEXT    NOT NULL,
    token_sealed        BLOB    NOT NULL,
    secret_key          TEXT    NOT NULL,
    secret_sealed       BLOB    NOT NULL,
    repos               TEXT    NOT NULL,
    groups_             TEXT    NOT NULL,
    max_projects        INTEGER NOT NULL,
    include_archived    INTEGER NOT NULL,
    requests_per_minute INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

-- The projects and sync state of the added connections: those of the
-- default connection stay in projects and sync_state, unchanged; project
-- ids are unique only within one GitLab.
CREATE TABLE connection_projects (
    connection       TEXT    NOT NULL,
    id               INTEGER NOT NULL,
    path             TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    web_url          TEXT    NOT NULL,
    default_branch   TEXT    NOT NULL,
    archived         INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    status_detail    TEXT    NOT NULL,
    status_at        INTEGER NOT NULL,
    PRIMARY KEY (connection, id)
) STRICT;

CREATE TABLE connection_sync_state (
    connection      TEXT    NOT NULL,
    project_id      INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    project_path    TEXT    NOT NULL,
    cursor_at       INTEGER NOT NULL,
    last_run_at     INTEGER NOT NULL,
    last_success_at INTEGER NOT NULL,
    fetched         INTEGER NOT NULL,
    stored          INTEGER NOT NULL,
    last_error      TEXT    NOT NULL,
    PRIMARY KEY (connection, project_id, kind)
) STRICT;

-- Every event carries its connection, read from its id (an added
-- connection's ids are "name:" and the default's; the default's all start
-- with a kind and a hyphen, store.ConnectionOf): computed on read, so it
-- never disagrees with the id, costs no write and rewrites no row.
ALTER TABLE events ADD COLUMN connection TEXT NOT NULL GENERATED ALWAYS AS (
    CASE WHEN instr(id, ':') > 1 AND instr(substr(id, 1, instr(id, ':') - 1), '-') = 0
         THEN substr(id, 1, instr(id, ':') - 1) ELSE 'default' END) VIRTUAL;

-- +goose Down
ALTER TABLE events DROP COLUMN connection;
DROP TABLE connection_sync_state;
DROP TABLE connection_projects;
DROP TABLE connections;
