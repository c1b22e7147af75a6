-- +goose Up
-- Webhook deliveries as received: committed before GitLab gets its 2xx,
-- converted later by a job. One row per delivery: GitLab's retries and
-- manual resends carry the same Idempotency-Key.
CREATE TABLE deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    event_uuid      text        NOT NULL,
    webhook_uuid    text        NOT NULL,
    headers         jsonb       NOT NULL, -- object, secrets removed
    body            bytea       NOT NULL,
    received_at     timestamptz NOT NULL,
    status          text        NOT NULL, -- pending, processed, stored_raw, failed
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    processed_at    timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00'
);

CREATE INDEX deliveries_status ON deliveries (status, id);

-- +goose Down
DROP TABLE deliveries;
