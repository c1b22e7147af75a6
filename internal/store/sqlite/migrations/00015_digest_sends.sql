-- +goose Up
-- Digests sent (issue 16): one row per period and destination, written
-- before the digest is sent (claimed_at) and marked sent (sent_at) after
-- the destination answered 2xx, so that a period is sent once whatever
-- restarts or replicas run the schedule. Times are unix nanoseconds; 0 is
-- none (not claimed now, not sent yet).
CREATE TABLE digest_sends (
    period_key  TEXT    NOT NULL,
    destination TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    sent_at     INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (period_key, destination)
) STRICT, WITHOUT ROWID;
CREATE INDEX digest_sends_updated ON digest_sends (updated_at);

-- +goose Down
DROP TABLE digest_sends;
