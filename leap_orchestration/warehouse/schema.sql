-- Warehouse tables. uploads, upload_errors, interval_readings, meters, dr_events, baselines and event_performance
-- are read by tools outside this repository: keep their names and columns (add columns freely).
CREATE TABLE IF NOT EXISTS uploads (
    upload_id VARCHAR PRIMARY KEY,      -- <tenant>/<file name>@<version>: one row per uploaded file version
    tenant VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    source_key VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    sha256 VARCHAR,
    size_bytes BIGINT,
    job_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,            -- QUEUED, PROCESSING, COMPLETED, FAILED
    rows_total BIGINT,                  -- data lines parsed
    rows_loaded BIGINT,
    error_count BIGINT,                 -- exact, even when upload_errors is capped
    error_lines BIGINT,
    warning_count BIGINT,
    received_at TIMESTAMPTZ,
    processed_at TIMESTAMPTZ,
    run_id VARCHAR,                     -- the Dagster run that processed it
    result_keys VARCHAR[],
    elapsed_ms BIGINT,
    summary JSON,                       -- [[column, code, count], ...] exact, errors and warnings
    connector_id VARCHAR                -- the GCS connector that delivered it (NULL: an SFTP partner's upload)
);
ALTER TABLE uploads ADD COLUMN IF NOT EXISTS connector_id VARCHAR;  -- warehouses created before connectors
-- times processing of this version started: a file whose checks keep killing the process fails (SYS_0002)
ALTER TABLE uploads ADD COLUMN IF NOT EXISTS attempts INTEGER;
CREATE TABLE IF NOT EXISTS upload_errors (
    job_id VARCHAR NOT NULL,
    line BIGINT,
    "column" VARCHAR,
    code VARCHAR,
    message VARCHAR,
    severity VARCHAR
);
-- One current row per (meter_id, interval_start_utc): the latest accepted upload (by received_at) wins.
CREATE TABLE IF NOT EXISTS interval_readings (
    meter_id VARCHAR NOT NULL,
    interval_start_utc TIMESTAMPTZ NOT NULL,
    interval_end_utc TIMESTAMPTZ NOT NULL,
    energy_consumed_kwh DOUBLE,
    energy_generated_kwh DOUBLE,
    energy_net_kwh DOUBLE,
    final BOOLEAN NOT NULL,
    region VARCHAR,
    job_id VARCHAR NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);
-- Earlier versions stay retrievable: every reading an upload replaced (or arrived too late to win).
CREATE TABLE IF NOT EXISTS interval_readings_superseded (
    meter_id VARCHAR NOT NULL,
    interval_start_utc TIMESTAMPTZ NOT NULL,
    interval_end_utc TIMESTAMPTZ NOT NULL,
    energy_consumed_kwh DOUBLE,
    energy_generated_kwh DOUBLE,
    energy_net_kwh DOUBLE,
    final BOOLEAN NOT NULL,
    region VARCHAR,
    job_id VARCHAR NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    superseded_by_job_id VARCHAR NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL
);
CREATE OR REPLACE VIEW interval_reading_history AS
    SELECT *, NULL::VARCHAR AS superseded_by_job_id, NULL::TIMESTAMPTZ AS superseded_at, true AS is_current
    FROM interval_readings
    UNION ALL
    SELECT *, false AS is_current FROM interval_readings_superseded;

CREATE TABLE IF NOT EXISTS meters (
    meter_id VARCHAR PRIMARY KEY,
    partner_id VARCHAR,                 -- current owner (NULL if no open ownership window)
    meter_type VARCHAR,
    timezone VARCHAR,
    config_uri VARCHAR,
    meter_number BIGINT,
    source VARCHAR,                     -- partner (created by a partner) or utility (utility-authorized)
    device_type VARCHAR,
    customer_class VARCHAR,
    region VARCHAR
);
CREATE TABLE IF NOT EXISTS meter_ownership (
    meter_id VARCHAR NOT NULL,
    partner_id VARCHAR NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to TIMESTAMPTZ                -- NULL: open-ended
);
CREATE TABLE IF NOT EXISTS meter_enrollments (
    meter_id VARCHAR NOT NULL,
    program_id VARCHAR NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS programs (
    program_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    baseline_preset VARCHAR,
    channel VARCHAR,
    holiday_calendar VARCHAR
);
-- Added with settlement. A warehouse from before gets the defaults until its configuration is reloaded, which the
-- configuration sensor does once after the upgrade (its cursor includes the loader version).
ALTER TABLE programs ADD COLUMN IF NOT EXISTS overrides JSON DEFAULT '{}';   -- {"name": "value"} over the preset
ALTER TABLE programs ADD COLUMN IF NOT EXISTS clip VARCHAR DEFAULT 'none';   -- none | event | interval
-- how long after an event's end readings may still come (programs.xml dataDeadline); numbers are preliminary until
ALTER TABLE programs ADD COLUMN IF NOT EXISTS data_deadline INTERVAL DEFAULT '60 days';
CREATE TABLE IF NOT EXISTS program_seasons (
    program_id VARCHAR NOT NULL,
    season_id VARCHAR NOT NULL,
    start_utc TIMESTAMPTZ NOT NULL,
    end_utc TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS dr_events (
    event_id VARCHAR PRIMARY KEY,
    program_id VARCHAR NOT NULL,
    start_utc TIMESTAMPTZ NOT NULL,
    end_utc TIMESTAMPTZ NOT NULL,
    event_type VARCHAR
);
CREATE TABLE IF NOT EXISTS config_loads (
    fingerprint VARCHAR NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    meters BIGINT,
    programs BIGINT,
    events BIGINT
);

-- What the landing-zone connector published: one row per connector, meter and UTC hour (the object's content),
-- so a run republishes only hours whose values changed. See leap_orchestration/standardized/publish.py.
CREATE TABLE IF NOT EXISTS standardized_hours (
    connector_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    hour_start_utc TIMESTAMPTZ NOT NULL,
    bucket VARCHAR NOT NULL,
    object_key VARCHAR NOT NULL,
    usage_kwh DOUBLE NOT NULL,
    consumed_kwh DOUBLE,
    generated_kwh DOUBLE,
    final BOOLEAN NOT NULL,
    revision INTEGER NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR,
    PRIMARY KEY (connector_id, meter_id, hour_start_utc)
);
-- Accepted uploads whose hours have been standardized (all their objects written).
CREATE TABLE IF NOT EXISTS standardized_jobs (
    job_id VARCHAR PRIMARY KEY,
    standardized_at TIMESTAMPTZ NOT NULL
);

-- Objects directly under a connector's prefix that are not uploads (not .csv/.csv.gz, e.g. a readme.txt put
-- there for the connector): left where they are, and reported once per version by the hourly schedule.
CREATE TABLE IF NOT EXISTS landing_zone_ignored (
    object_key VARCHAR NOT NULL,
    version VARCHAR NOT NULL,           -- the GCS generation (local stand-in: size-mtime)
    tenant VARCHAR NOT NULL,            -- the connector's participant
    size_bytes BIGINT,
    updated_at TIMESTAMPTZ,             -- the object's own time (GCS: updated)
    reported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (object_key, version)
);

-- Settlement (leap_orchestration/settlement). `baselines` and `event_performance` are contract tables.
-- Per meter, event and 15-minute event interval: the baseline (unadjusted and adjusted) and the actual (NULL if
-- missing). Only meters with numbers have rows; baseline_status says why the others have none.
CREATE TABLE IF NOT EXISTS baselines (
    event_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    interval_start_utc TIMESTAMPTZ NOT NULL,
    method VARCHAR NOT NULL,            -- the program's baseline preset
    baseline_kwh DOUBLE,
    adjusted_baseline_kwh DOUBLE,
    actual_kwh DOUBLE,
    program_id VARCHAR NOT NULL,
    final BOOLEAN NOT NULL,             -- every reading this row used is final
    computed_at TIMESTAMPTZ NOT NULL
);
-- Per meter and event: the status (docs/baselines.md), the days the baseline used and the day-of adjustment.
CREATE TABLE IF NOT EXISTS baseline_status (
    event_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    program_id VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    selected_days DATE[],               -- local days averaged (NULL for same-day and zero baselines)
    adjustment DOUBLE,                  -- ratio (multiplicative) or kWh per interval (additive); NULL if none
    intervals_expected INTEGER NOT NULL,
    intervals_present INTEGER NOT NULL, -- event intervals with an actual
    actual_kwh DOUBLE,                  -- sum of the present actuals
    computed_at TIMESTAMPTZ NOT NULL
);
-- Why: per meter, event and local day of the look-back, whether the baseline used the day and if not, why
-- (engine.DAY_OUTCOMES, docs/baselines.md "Explanations").
CREATE TABLE IF NOT EXISTS baseline_days (
    event_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    day DATE NOT NULL,                  -- local day in the meter's time zone
    day_type VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    slots_missing INTEGER NOT NULL,     -- event and adjustment window slots without a reading that day
    event_window_mean_kwh DOUBLE,       -- the day's mean per interval over the event window's slots
    computed_at TIMESTAMPTZ NOT NULL
);
-- Per meter and event: the rule applied and the day-of adjustment window's sums, ratio or delta before and after
-- the cap.
CREATE TABLE IF NOT EXISTS baseline_explanations (
    event_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    event_day DATE NOT NULL,            -- the event's local day in the meter's time zone
    day_type VARCHAR,                   -- the event day's type (NULL for same-day and zero baselines)
    days_wanted INTEGER,                -- Y (NULL: the preset has no rule for this day type)
    selection VARCHAR,                  -- all | highest | middle
    days_kept INTEGER,                  -- X for highest
    lookback_days INTEGER,
    adjustment_kind VARCHAR NOT NULL,   -- multiplicative | additive | none | same_day | zero
    adjustment_cap DOUBLE,
    adjustment_slots_expected INTEGER NOT NULL,
    adjustment_slots_present INTEGER NOT NULL,
    adjustment_window_actual_kwh DOUBLE,
    adjustment_window_baseline_kwh DOUBLE,
    adjustment_raw DOUBLE,              -- ratio or delta before the cap (same_day: the window's mean)
    adjustment_applied DOUBLE,          -- after the cap; NULL when the window is incomplete
    computed_at TIMESTAMPTZ NOT NULL
);
-- Missing 15-minute readings that would change an event's result if uploaded: its event window, its adjustment
-- windows on the event day, and the event and adjustment slots of incomplete days among the Y most recent
-- candidate days.
CREATE TABLE IF NOT EXISTS missing_intervals (
    event_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    interval_start_utc TIMESTAMPTZ NOT NULL,
    window_kind VARCHAR NOT NULL,       -- event | adjustment | lookback
    computed_at TIMESTAMPTZ NOT NULL
);
-- Events whose baselines are current: the digest of everything they were computed from.
CREATE TABLE IF NOT EXISTS settled_events (
    event_id VARCHAR PRIMARY KEY,
    inputs_digest VARCHAR NOT NULL,
    meters BIGINT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
);
-- One row: what the last settlement saw (configuration, engine and holidays versions; readings loaded up to the
-- watermark), so the next one only takes digests where something may have changed.
CREATE TABLE IF NOT EXISTS settlement_state (
    state_key VARCHAR NOT NULL,
    readings_watermark TIMESTAMPTZ NOT NULL,
    settled_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS event_performance (
    event_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    program_id VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    baseline_kwh DOUBLE,                -- adjusted baseline, summed over the intervals with an actual
    actual_kwh DOUBLE,
    reduction_kwh DOUBLE,               -- signed by channel; clipped only where the program says
    avg_reduction_kw DOUBLE,            -- reduction_kwh / hours covered by present intervals
    intervals_expected INTEGER NOT NULL,
    intervals_present INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    unadjusted_baseline_kwh DOUBLE,
    event_hours DOUBLE NOT NULL,
    channel VARCHAR NOT NULL,
    clip VARCHAR NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);
-- Clock hours of an event with all four intervals present (an incomplete hour is dropped).
CREATE TABLE IF NOT EXISTS event_performance_hourly (
    event_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    program_id VARCHAR NOT NULL,
    hour_start_utc TIMESTAMPTZ NOT NULL,
    baseline_kwh DOUBLE NOT NULL,
    actual_kwh DOUBLE NOT NULL,
    reduction_kwh DOUBLE NOT NULL
);
-- Per event (all its meters): totals and status counts.
CREATE TABLE IF NOT EXISTS program_event_performance (
    event_id VARCHAR NOT NULL,
    program_id VARCHAR NOT NULL,
    start_utc TIMESTAMPTZ NOT NULL,
    end_utc TIMESTAMPTZ NOT NULL,
    event_hours DOUBLE NOT NULL,
    meters_enrolled BIGINT NOT NULL,
    meters_with_numbers BIGINT NOT NULL,
    meters_ok BIGINT NOT NULL,
    baseline_kwh DOUBLE,
    actual_kwh DOUBLE,
    reduction_kwh DOUBLE,
    avg_reduction_kw DOUBLE             -- reduction_kwh / event_hours: the event's aggregate delivered kW
);
-- Per program, season and meter: average kW over all event hours of the season (a missed event counts as 0).
CREATE TABLE IF NOT EXISTS season_performance (
    program_id VARCHAR NOT NULL,
    season_id VARCHAR NOT NULL,
    meter_id VARCHAR NOT NULL,
    events BIGINT NOT NULL,
    events_with_numbers BIGINT NOT NULL,
    event_hours DOUBLE NOT NULL,
    reduction_kwh DOUBLE NOT NULL,
    avg_reduction_kw DOUBLE NOT NULL
);

-- Partner statements (leap_orchestration/statements, docs/statements.md). Every version issued to a partner:
-- V1, V2, … of each statement, issued only when its content changed.
CREATE TABLE IF NOT EXISTS statement_versions (
    partner_id VARCHAR NOT NULL,
    statement_id VARCHAR NOT NULL,      -- event/<program>/<event> | season/<program>/<season>
    kind VARCHAR NOT NULL,              -- event | season
    program_id VARCHAR NOT NULL,
    subject_id VARCHAR NOT NULL,        -- the event or the season
    version INTEGER NOT NULL,
    status VARCHAR NOT NULL,            -- PRELIMINARY | FINAL
    digest VARCHAR NOT NULL,            -- of the content (not of when it was issued)
    issued_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR,
    causes JSON,                        -- why it changed since the previous version
    changed_values INTEGER,             -- values that differ from the previous version
    delivered_at TIMESTAMPTZ,           -- when the partner's pointers (latest.json, index.csv) named it
    PRIMARY KEY (partner_id, statement_id, version)
);
-- The lines of each statement's latest version, the reference of the next version's diff.
CREATE TABLE IF NOT EXISTS statement_lines (
    partner_id VARCHAR NOT NULL,
    statement_id VARCHAR NOT NULL,
    line_key VARCHAR NOT NULL,          -- <meter> or <meter>@<interval start UTC>
    line_values JSON NOT NULL
);
-- What each event's statements were last built from, so an hourly look rebuilds only what may have changed.
CREATE TABLE IF NOT EXISTS statement_builds (
    event_id VARCHAR PRIMARY KEY,
    build_key VARCHAR NOT NULL,
    built_at TIMESTAMPTZ NOT NULL
);
-- The digest of each partner's last delivered report (missing-intervals.csv), rewritten only when it changes.
CREATE TABLE IF NOT EXISTS partner_reports (
    partner_id VARCHAR NOT NULL,
    report VARCHAR NOT NULL,
    digest VARCHAR NOT NULL,
    written_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner_id, report)
);

-- One row per group of writers that must commit one after the other even on a multi-writer backend (see
-- duck.serialize_with): a commit of the group updates its row, and two concurrent updates of a row conflict.
CREATE TABLE IF NOT EXISTS write_serials (
    name VARCHAR NOT NULL,
    commits BIGINT NOT NULL
);
INSERT INTO write_serials (name, commits)
    SELECT name, 0 FROM (VALUES ('interval_readings'), ('standardized_hours'), ('statements')) AS v(name)
    WHERE name NOT IN (SELECT name FROM write_serials);
