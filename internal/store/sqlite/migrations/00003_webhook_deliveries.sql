-- +goose Up
-- Webhook deliveries as received: committed before GitLab gets its 2xx,
-- converted later by a job. One row per delivery: GitLab's retries and
-- manual resends carry the same Idempotency-Key.
CREATE TABLE deliveries (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    event_uuid      TEXT    NOT NULL,
    webhook_uuid    TEXT    NOT NULL,
    headers         TEXT    NOT NULL, -- JSON object, secrets removed
    body            BLOB    NOT NULL,
    received_at     INTEGER NOT NULL,
    status          TEXT    NOT NULL, -- pending, processed, stored_raw, failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    processed_at    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX deliveries_status ON deliveries (status, id);

-- +goose Down
DROP TABLE deliveries;
