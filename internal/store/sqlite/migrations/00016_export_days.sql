-- export_days tracks, per kind and UTC day of occurred_at, whether the S3
-- export holds the day as it is now (issue 16). Triggers bump version on
-- every change to an event or its timeline; the export records the version
-- it wrote in exported_version, so a day is pending while they differ and a
-- late update makes an exported day pending again. Deletes do not bump it:
-- only retention deletes events, and it must not make the export rewrite a
-- day with fewer events (it sets pruned instead). Days are unix nanoseconds,
-- like every time here.

-- +goose Up
CREATE TABLE export_days (
    kind             TEXT    NOT NULL,
    day_start        INTEGER NOT NULL,
    day_end          INTEGER NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    exported_version INTEGER NOT NULL DEFAULT 0,
    exported_at      INTEGER NOT NULL DEFAULT 0,
    events           INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    sha256           TEXT    NOT NULL DEFAULT '',
    rewrites         INTEGER NOT NULL DEFAULT 0,
    pruned           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, day_start)
) STRICT;

CREATE INDEX export_days_pending ON export_days (day_start, kind) WHERE version <> exported_version;

INSERT INTO export_days (kind, day_start, day_end)
SELECT kind, d, d + 86400000000000 FROM (
    SELECT DISTINCT kind, occurred_at - ((occurred_at % 86400000000000) + 86400000000000) % 86400000000000 AS d
    FROM events);

-- +goose StatementBegin
CREATE TRIGGER export_days_insert AFTER INSERT ON events BEGIN
    INSERT INTO export_days (kind, day_start, day_end)
    VALUES (NEW.kind, NEW.occurred_at - ((NEW.occurred_at % 86400000000000) + 86400000000000) % 86400000000000,
            NEW.occurred_at - ((NEW.occurred_at % 86400000000000) + 86400000000000) % 86400000000000 + 86400000000000)
    ON CONFLICT (kind, day_start) DO UPDATE SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER export_days_update AFTER UPDATE ON events BEGIN
    UPDATE export_days SET version = version + 1
    WHERE kind = OLD.kind
      AND day_start = OLD.occurred_at - ((OLD.occurred_at % 86400000000000) + 86400000000000) % 86400000000000;
    INSERT INTO export_days (kind, day_start, day_end)
    VALUES (NEW.kind, NEW.occurred_at - ((NEW.occurred_at % 86400000000000) + 86400000000000) % 86400000000000,
            NEW.occurred_at - ((NEW.occurred_at % 86400000000000) + 86400000000000) % 86400000000000 + 86400000000000)
    ON CONFLICT (kind, day_start) DO UPDATE SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER export_days_timeline AFTER INSERT ON timeline BEGIN
    UPDATE export_days SET version = version + 1
    WHERE (kind, day_start) IN (
        SELECT kind, occurred_at - ((occurred_at % 86400000000000) + 86400000000000) % 86400000000000
        FROM events WHERE id = NEW.event_id);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER export_days_timeline;
DROP TRIGGER export_days_update;
DROP TRIGGER export_days_insert;
DROP TABLE export_days;
