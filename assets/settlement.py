"""Settlement: baselines per meter and DR event, event performance, and its hourly, per-event and per-season
roll-ups. The computation lives in leap_orchestration/settlement; these assets only wire it into Dagster."""

import datetime as dt

import dagster as dg

from leap_orchestration.resources import WarehouseResource
from leap_orchestration.settlement.performance import (
    PROGRAM_EVENTS,
    rebuild_event_performance,
    rebuild_hourly,
    rebuild_program_events,
    rebuild_seasons,
)
from leap_orchestration.settlement.settle import settle, stale_events

CHARTED_EVENTS = 8  # the most recent events get a chart in the metadata; every event is in the summary table


class BaselinesConfig(dg.Config):
    """`force`: recompute every ended event, even those whose inputs did not change (after a holiday-calendar
    update, say: the `holidays` package is not part of the inputs digest)."""

    force: bool = False


_ASSET = {"group_name": "settlement", "kinds": {"duckdb"}, "owners": ["team:settlement"], "pool": "duckdb"}


@dg.asset(
    deps=["interval_readings", "meter_configuration"],
    **_ASSET,
    description="Baseline and actual per meter, DR event and 15-minute event interval, by the program's "
    "preset (docs/baselines.md); recomputed for exactly the ended events whose readings or configuration changed.",
)
def baselines(
    context: dg.AssetExecutionContext, config: BaselinesConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    now = dt.datetime.now(dt.UTC)
    with warehouse.warehouse().connect() as con:
        report = settle(
            con,
            now,
            run_id=context.run.run_id,
            force=config.force,
            log=lambda event_id: context.log.info("settled %s", event_id),
        )
        rows = con.execute("SELECT count(*) FROM baselines").fetchall()[0][0]
        statuses = dict(con.execute("SELECT status, count(*) FROM baseline_status GROUP BY ALL").fetchall())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "events_recomputed": dg.MetadataValue.json(report.computed),
            "events_unchanged": len(report.unchanged),
            "events_not_ended": dg.MetadataValue.json(report.not_ended),
            "events_removed": report.removed,
            "meter_statuses": dg.MetadataValue.json(statuses),
        }
    )


@dg.asset(
    deps=[baselines],
    **_ASSET,
    description="Per meter and event: baseline, actual and reduction (kWh), average kW, intervals expected "
    "and present, status. Charts of the most recent events are in this asset's metadata.",
)
def event_performance(warehouse: WarehouseResource) -> dg.MaterializeResult:
    # matplotlib costs 0.8 s of imports: only where charts are drawn, not on every code-location load
    from leap_orchestration.settlement import charts

    with warehouse.warehouse().connect() as con:
        rows = rebuild_event_performance(con, dt.datetime.now(dt.UTC))
        summary = con.execute(f"""SELECT event_id, program_id, start_utc, meters_enrolled, meters_with_numbers,
                                         reduction_kwh, avg_reduction_kw FROM ({PROGRAM_EVENTS})
                                  ORDER BY start_utc DESC, event_id""").fetchall()
        reports = {
            f"event {e[0]}": dg.MetadataValue.md(charts.event_report(con, e[0]))
            for e in summary[:CHARTED_EVENTS]
        }
    table = dg.TableMetadataValue(
        records=[
            dg.TableRecord(
                {
                    "event": e,
                    "program": p,
                    "start_utc": s.isoformat(),
                    "meters": n,
                    "with_numbers": k,
                    "reduction_kwh": round(r or 0.0, 3),
                    "avg_kw": round(kw or 0.0, 3),
                }
            )
            for e, p, s, n, k, r, kw in summary
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(c, t)
                for c, t in (
                    ("event", "string"),
                    ("program", "string"),
                    ("start_utc", "string"),
                    ("meters", "int"),
                    ("with_numbers", "int"),
                    ("reduction_kwh", "float"),
                    ("avg_kw", "float"),
                )
            ]
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "events": table,
            "total_reduction_kwh": float(sum(r or 0.0 for *_, r, _ in summary)),
            **reports,
        }
    )


@dg.asset(
    deps=[event_performance],
    **_ASSET,
    description="Per meter and local clock hour of an event: the sum of its four intervals (an incomplete hour is dropped).",
)
def event_performance_hourly(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.warehouse().connect() as con:
        return dg.MaterializeResult(metadata={"dagster/row_count": rebuild_hourly(con)})


@dg.asset(
    deps=[event_performance],
    **_ASSET,
    description="Per DR event: meters enrolled, with numbers and OK; baseline, actual and reduction totals; "
    "the event's aggregate average kW.",
)
def program_event_performance(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.warehouse().connect() as con:
        return dg.MaterializeResult(metadata={"dagster/row_count": rebuild_program_events(con)})


@dg.asset(
    deps=[event_performance],
    **_ASSET,
    description="Per program, season and meter: average kW over all the season's event hours, a missed event "
    "counting as zero (as ConnectedSolutions pays).",
)
def season_performance(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.warehouse().connect() as con:
        return dg.MaterializeResult(metadata={"dagster/row_count": rebuild_seasons(con)})


@dg.asset_check(
    asset=baselines,
    blocking=False,
    pool="duckdb",
    description="Coverage: every ended event is settled on its current inputs, and every meter enrolled "
    "in it has a status.",
)
def baselines_cover_events(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    # Not blocking: another run's intake may take the duckdb slot between `baselines` and this check, making an
    # event stale for a moment; the performance tables still agree with the stored baselines, and the sensor's
    # next settlement catches up. A failure that persists across runs is the one to act on.
    with warehouse.warehouse().connect(read_only=True) as con:
        # as of the last settlement: events that ended after it started are the next run's
        settled_at = con.execute("SELECT max(settled_at) FROM settlement_state").fetchall()[0][0]
        cutoff = settled_at or dt.datetime.now(dt.UTC)
        stale = sorted(e.event_id for e in stale_events(con, cutoff).stale)
        missing = con.execute("""SELECT count(*) FROM settled_events s JOIN dr_events e USING (event_id)
                     JOIN meter_enrollments en ON en.program_id = e.program_id
                     WHERE en.valid_from <= e.start_utc AND (en.valid_to IS NULL OR en.valid_to > e.start_utc)
                       AND (e.event_id, en.meter_id) NOT IN (SELECT event_id, meter_id FROM baseline_status)""").fetchall()[
            0
        ][0]
    return dg.AssetCheckResult(
        passed=not stale and missing == 0,
        metadata={"events_not_current": dg.MetadataValue.json(stale), "meters_without_status": missing},
    )


@dg.asset_check(
    asset=event_performance,
    blocking=False,
    pool="duckdb",
    description="Sufficiency: meters whose event has no numbers (not enough eligible days, or no "
    "adjustment data for a same-day baseline) or only partial actuals. A warning, not a failure: the "
    "status column says why, and the numbers are never silently filled in.",
)
def event_performance_sufficiency(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.warehouse().connect(read_only=True) as con:
        counts = dict(con.execute("SELECT status, count(*) FROM event_performance GROUP BY ALL").fetchall())
        worst = con.execute("""SELECT event_id, count(*) FILTER (WHERE reduction_kwh IS NULL) AS without_numbers,
                                      count(*) FILTER (WHERE status = 'MISSING_ACTUALS') AS partial, count(*) AS meters
                               FROM event_performance GROUP BY ALL HAVING without_numbers + partial > 0
                               ORDER BY without_numbers + partial DESC LIMIT 10""").fetchall()
    lacking = sum(
        n for s, n in counts.items() if s in ("INSUFFICIENT_DAYS", "NO_ADJUSTMENT_DATA", "MISSING_ACTUALS")
    )
    return dg.AssetCheckResult(
        passed=lacking == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "statuses": dg.MetadataValue.json(counts),
            "meters_lacking_data": lacking,
            "events_most_affected": dg.MetadataValue.json(
                [
                    {"event": e, "without_numbers": w, "partial_actuals": p, "meters": m}
                    for e, w, p, m in worst
                ]
            ),
        },
    )


SETTLEMENT_ASSETS = [
    baselines,
    event_performance,
    event_performance_hourly,
    program_event_performance,
    season_performance,
]
SETTLEMENT_CHECKS = [baselines_cover_events, event_performance_sufficiency]
