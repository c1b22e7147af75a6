-- +goose Up
-- API tokens (issue 14): only the SHA-256 of each token is kept; the token
-- itself is shown once, when it is made. Times are unix nanoseconds; 0 is
-- none (never used, never expires, not revoked).
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    scope        TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0,
    expires_at   INTEGER NOT NULL DEFAULT 0,
    revoked_at   INTEGER NOT NULL DEFAULT 0
) STRICT;

-- The admin audit trail: admin actions and sign-ins, newest last; id is
-- the order and the cursor.
CREATE TABLE admin_audit (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL,
    remote TEXT    NOT NULL,
    ok     INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE admin_audit;
DROP TABLE api_tokens;
