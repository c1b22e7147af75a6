-- export_days tracks, per kind and UTC day of occurred_at, whether the S3
-- export holds the day as it is now (issue 16). Triggers bump version on
-- every change to an event or its timeline; the export records the version
-- it wrote in exported_version, so a day is pending while they differ and a
-- late update makes an exported day pending again. Deletes do not bump it:
-- only retention deletes events, and it must not make the export rewrite a
-- day with fewer events (it sets pruned instead).

-- +goose Up
CREATE TABLE export_days (
    kind             text COLLATE "C" NOT NULL,
    day_start        timestamptz NOT NULL,
    day_end          timestamptz NOT NULL,
    version          bigint      NOT NULL DEFAULT 1,
    exported_version bigint      NOT NULL DEFAULT 0,
    exported_at      timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    events           bigint      NOT NULL DEFAULT 0,
    bytes            bigint      NOT NULL DEFAULT 0,
    sha256           text        NOT NULL DEFAULT '',
    rewrites         bigint      NOT NULL DEFAULT 0,
    pruned           boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (kind, day_start)
);

CREATE INDEX export_days_pending ON export_days (day_start, kind) WHERE version <> exported_version;

INSERT INTO export_days (kind, day_start, day_end)
SELECT DISTINCT kind, date_trunc('day', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       (date_trunc('day', occurred_at AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
FROM events;

-- +goose StatementBegin
CREATE FUNCTION export_days_bump(k text, at timestamptz) RETURNS void LANGUAGE sql AS $$
    INSERT INTO export_days (kind, day_start, day_end)
    VALUES (k, date_trunc('day', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
            (date_trunc('day', at AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC')
    ON CONFLICT (kind, day_start) DO UPDATE SET version = export_days.version + 1;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION export_days_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM export_days_bump(OLD.kind, OLD.occurred_at);
    END IF;
    PERFORM export_days_bump(NEW.kind, NEW.occurred_at);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION export_days_timeline() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM export_days_bump(e.kind, e.occurred_at) FROM events e WHERE e.id = NEW.event_id;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER export_days_events AFTER INSERT OR UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION export_days_events();
CREATE TRIGGER export_days_timeline AFTER INSERT ON timeline
    FOR EACH ROW EXECUTE FUNCTION export_days_timeline();

-- +goose Down
DROP TRIGGER export_days_timeline ON timeline;
DROP TRIGGER export_days_events ON events;
DROP FUNCTION export_days_timeline();
DROP FUNCTION export_days_events();
DROP FUNCTION export_days_bump(text, timestamptz);
DROP TABLE export_days;
