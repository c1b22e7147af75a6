-- +goose Up
-- When labtrail saw the stored version of each event (unix nanoseconds, 0
-- for unknown, as for rows stored before this column): for a poll, just
-- before the request that read it; for a webhook, when the delivery was
-- received. The upsert rule compares it to let a poll overrule what a
-- webhook seen earlier said (docs/architecture.md, "One history").
ALTER TABLE events ADD COLUMN observed_at INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE events DROP COLUMN observed_at;
