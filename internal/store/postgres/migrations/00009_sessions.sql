-- +goose Up
-- Dashboard sessions (issue 14): only the SHA-256 of the session id the
-- cookie holds is kept. A session signed in with an API token carries that
-- token's id, name and scope, and ends when it expires, is signed out of,
-- or its token is revoked or expires.
CREATE TABLE sessions (
    id_hash    bytea       NOT NULL PRIMARY KEY,
    token_id   bigint      NOT NULL,
    name       text        NOT NULL,
    scope      text        NOT NULL,
    csrf       text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
