-- Times are timestamptz (microsecond precision, UTC); Go's zero time is kept
-- as 0001-01-01 00:00:00 UTC rather than NULL, so it sorts oldest as in the
-- SQLite store and the (occurred_at, id) keyset needs no NULL handling.
-- Text compared or sorted (ids, paths, kinds) uses COLLATE "C": byte order,
-- as the cursor and the conformance suite expect.

-- +goose Up
CREATE TABLE events (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    kind         text COLLATE "C" NOT NULL,
    project_id   bigint      NOT NULL,
    project_path text COLLATE "C" NOT NULL,
    title        text        NOT NULL,
    state        text        NOT NULL,
    author       text        NOT NULL,
    web_url      text        NOT NULL,
    ref          text        NOT NULL,
    sha          text        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    occurred_at  timestamptz NOT NULL,
    source       text        NOT NULL,
    attrs        jsonb,                -- object, NULL when there are none
    hash         bytea       NOT NULL  -- sha256 of the content; see contentHash
);

-- One index per List filter, each ending in the sort key so a filtered page
-- is a range scan with no sort step.
CREATE INDEX events_occurred     ON events (occurred_at, id);
CREATE INDEX events_kind         ON events (kind, occurred_at, id);
CREATE INDEX events_project_id   ON events (project_id, occurred_at, id);
CREATE INDEX events_project_path ON events (project_path, occurred_at, id);
CREATE INDEX events_author       ON events (author, occurred_at, id);

-- seq breaks ties between entries at the same instant by arrival.
CREATE TABLE timeline (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id text COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    state    text        NOT NULL,
    at       timestamptz NOT NULL,
    source   text        NOT NULL,
    UNIQUE (event_id, state, at)
);

CREATE INDEX timeline_event_at ON timeline (event_id, at);

CREATE TABLE projects (
    id               bigint  NOT NULL PRIMARY KEY,
    path             text COLLATE "C" NOT NULL,
    name             text    NOT NULL,
    web_url          text    NOT NULL,
    default_branch   text    NOT NULL,
    archived         boolean NOT NULL,
    last_activity_at timestamptz NOT NULL
);

CREATE INDEX projects_path ON projects (path, id);

CREATE TABLE sync_state (
    project_id      bigint NOT NULL,
    kind            text COLLATE "C" NOT NULL,
    project_path    text COLLATE "C" NOT NULL,
    cursor_at       timestamptz NOT NULL,
    last_run_at     timestamptz NOT NULL,
    last_success_at timestamptz NOT NULL,
    fetched         bigint NOT NULL,
    stored          bigint NOT NULL,
    last_error      text   NOT NULL,
    PRIMARY KEY (project_id, kind)
);

-- +goose Down
DROP TABLE sync_state;
DROP TABLE projects;
DROP TABLE timeline;
DROP TABLE events;
