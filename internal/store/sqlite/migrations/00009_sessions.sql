-- +goose Up
-- Dashboard sessions (issue 14): only the SHA-256 of the session id the
-- cookie holds is kept. A session signed in with an API token carries that
-- token's id, name and scope, and ends when it expires, is signed out of,
-- or its token is revoked or expires.
CREATE TABLE sessions (
    id_hash    BLOB    NOT NULL PRIMARY KEY,
    token_id   INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
