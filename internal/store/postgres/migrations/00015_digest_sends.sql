-- +goose Up
-- Digests sent (issue 16): one row per period and destination, written
-- before the digest is sent (claimed_at) and marked sent (sent_at) after
-- the destination answered 2xx, so that a period is sent once whatever
-- restarts or replicas run the schedule. A zero time is none (not claimed
-- now, not sent yet).
CREATE TABLE digest_sends (
    period_key  text        NOT NULL,
    destination text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    attempts    integer     NOT NULL DEFAULT 0,
    sent_at     timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    last_error  text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (period_key, destination)
);
CREATE INDEX digest_sends_updated ON digest_sends (updated_at);

-- +goose Down
DROP TABLE digest_sends;
