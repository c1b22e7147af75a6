-- +goose Up
-- When labtrail saw the stored version of each event (unix nanoseconds, 0
-- for unknown, as for rows stored before this column): for a poll, just
-- before the request that read it; for a webhook, when the delivery was
-- received. The upsert rule compares it to let a poll overrule what a
-- webhook seen earlier said (docs/architecture.md, "One history").
ALTER TABLE events ADD COLUMN observed_at INTEGER NOT NULL DEFAULT 0;

-- What a webhook stored and no poll has read since, per project and kind:
-- the poller walks back far enough to read it again (Store.Unverified).
CREATE INDEX events_unverified ON events (project_id, kind) WHERE source = 'webhook';

-- +goose Down
DROP INDEX events_unverified;
ALTER TABLE events DROP COLUMN observed_at;
