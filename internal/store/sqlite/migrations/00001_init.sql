-- Times are INTEGER unix nanoseconds in UTC, 0 for Go's zero time: integers
-- compare and sort exactly, which the ordering rule (older updated_at never
-- overwrites) and the (occurred_at, id) keyset cursor depend on. Ids compare
-- with SQLite's default BINARY collation, i.e. in byte order, as the cursor
-- and the conformance suite expect.

-- +goose Up
CREATE TABLE events (
    id           TEXT    NOT NULL PRIMARY KEY,
    kind         TEXT    NOT NULL,
    project_id   INTEGER NOT NULL,
    project_path TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    author       TEXT    NOT NULL,
    web_url      TEXT    NOT NULL,
    ref          TEXT    NOT NULL,
    sha          TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    occurred_at  INTEGER NOT NULL,
    source       TEXT    NOT NULL,
    attrs        TEXT,             -- JSON object, NULL when there are none
    hash         BLOB    NOT NULL  -- sha256 of the content; see contentHash
) STRICT;

-- One index per List filter, each ending in the sort key so a filtered page
-- is a range scan with no sort step.
CREATE INDEX events_occurred     ON events (occurred_at, id);
CREATE INDEX events_kind         ON events (kind, occurred_at, id);
CREATE INDEX events_project_id   ON events (project_id, occurred_at, id);
CREATE INDEX events_project_path ON events (project_path, occurred_at, id);
CREATE INDEX events_author       ON events (author, occurred_at, id);

-- seq breaks ties between entries at the same instant by arrival, so "the
-- entry immediately before" is always one row.
CREATE TABLE timeline (
    seq      INTEGER NOT NULL PRIMARY KEY,
    event_id TEXT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    state    TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    source   TEXT    NOT NULL,
    UNIQUE (event_id, state, at)
) STRICT;

CREATE INDEX timeline_event_at ON timeline (event_id, at);

CREATE TABLE projects (
    id               INTEGER NOT NULL PRIMARY KEY,
    path             TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    web_url          TEXT    NOT NULL,
    default_branch   TEXT    NOT NULL,
    archived         INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL
) STRICT;

CREATE INDEX projects_path ON projects (path, id);

CREATE TABLE sync_state (
    project_id      INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    project_path    TEXT    NOT NULL,
    cursor_at       INTEGER NOT NULL,
    last_run_at     INTEGER NOT NULL,
    last_success_at INTEGER NOT NULL,
    fetched         INTEGER NOT NULL,
    stored          INTEGER NOT NULL,
    last_error      TEXT    NOT NULL,
    PRIMARY KEY (project_id, kind)
) STRICT;

-- +goose Down
DROP TABLE sync_state;
DROP TABLE projects;
DROP TABLE timeline;
DROP TABLE events;
