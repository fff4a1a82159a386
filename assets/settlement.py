"""Settlement: baselines per meter and DR event, event performance, and its hourly, per-event and per-season
roll-ups. The computation lives in leap_orchestration/settlement; these assets only wire it into Dagster."""

import datetime as dt

import dagster as dg

from leap_orchestration.resources import WarehouseResource
from leap_orchestration.settlement import views
from leap_orchestration.settlement.performance import (
    rebuild_event_performance,
    rebuild_hourly,
    rebuild_program_events,
    rebuild_seasons,
    settled_since_performance,
    settlement_version,
)
from leap_orchestration.settlement.settle import settle, stale_events


def table(rows: list[dict]) -> dg.TableMetadataValue:
    """An inline UI table from plain rows (all rows, columns in the rows' order; None shows blank)."""
    columns = list(rows[0]) if rows else []
    kinds = {bool: "bool", int: "int", float: "float"}
    return dg.TableMetadataValue(
        records=[dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(
                    c,
                    next(
                        (kinds[type(r[c])] for r in rows if r[c] is not None and type(r[c]) in kinds),
                        "string",
                    ),
                )
                for c in columns
            ]
        ),
    )


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
        version = settlement_version(con)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "dagster/row_count": rows,
            "events_recomputed": dg.MetadataValue.json(report.computed),
            "events_unchanged": len(report.unchanged),
            "events_not_ended": dg.MetadataValue.json(report.not_ended),
            "events_removed": report.removed,
            "meter_statuses": dg.MetadataValue.json(statuses),
        },
    )


# Readings can still arrive for this long after an event (partners upload late or correct data); an older
# event's gaps are history: they stay in event_performance's tables, but no longer ask anyone to act.
ACTIONABLE_DAYS = 60


SUFFICIENCY = dg.AssetCheckSpec(
    "event_performance_sufficiency",
    asset="event_performance",
    description=f"Sufficiency: meters of events that ended in the last {ACTIONABLE_DAYS} days whose numbers are "
    "missing (not enough eligible days, no adjustment data for a same-day baseline) or partial (missing actuals), "
    "named with what would clear it. A warning, not a failure: the numbers are never silently filled in. Older "
    "events' gaps stay listed in event_performance's meters_lacking_data table.",
)


def _first_named(rows: list[dict], name) -> str:
    """The first five rows named for a check's description, '…' if there are more (all are in its table)."""
    return ", ".join(name(r) for r in rows[:5]) + (" …" if len(rows) > 5 else "")


def _sufficiency(con, since: dt.datetime) -> dg.AssetCheckResult:
    counts = dict(con.execute("SELECT status, count(*) FROM event_performance GROUP BY ALL").fetchall())
    lacking = views.lacking_data(con, ended_since=since)
    older = len(views.lacking_data(con)) - len(lacking)
    named = _first_named(lacking, lambda r: f"{r['meter'][:8]}… in {r['event']} ({r['status']})")
    return dg.AssetCheckResult(
        check_name=SUFFICIENCY.name,
        passed=not lacking,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(lacking)} meter-event(s) lack data: {named}. "
            "To clear: the partner uploads the missing readings (see to_clear_it)."
            if lacking
            else f"every meter of the events of the last {ACTIONABLE_DAYS} days has full numbers"
            + (
                f" ({older} gap(s) in older events are history: event_performance's meters_lacking_data)"
                if older
                else ""
            )
        ),
        metadata={
            "statuses": dg.MetadataValue.json(counts),
            "meters_lacking_data": table(lacking),
            "older_events_lacking_data": older,
        },
    )


DELIVERY = dg.AssetCheckSpec(
    "event_performance_delivery",
    asset="event_performance",
    description=f"Delivery: meters of events that ended in the last {ACTIONABLE_DAYS} days that have numbers but "
    "no reduction (reduction <= 0: no load shed, or a battery that did not discharge). Apart from sufficiency: "
    "these meters' data is fine; what to check is the device or the partner's dispatch. A warning, never a failure.",
)


def _delivery(con, since: dt.datetime) -> dg.AssetCheckResult:
    idle = views.not_delivered(con, ended_since=since)
    older = len(views.not_delivered(con)) - len(idle)
    named = _first_named(idle, lambda r: f"{r['meter'][:8]}… in {r['event']} ({r['reduction_kwh']} kWh)")
    return dg.AssetCheckResult(
        check_name=DELIVERY.name,
        passed=not idle,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(idle)} meter-event(s) delivered no reduction: {named}. "
            "To act: check the device and whether the partner dispatched it; the warning ends when the event "
            f"is {ACTIONABLE_DAYS} days old (event_performance keeps the rows)."
            if idle
            else f"every meter with numbers in the events of the last {ACTIONABLE_DAYS} days reduced its load"
            + (f" ({older} older meter-event(s) without reduction are history)" if older else "")
        ),
        metadata={"meters_not_delivering": table(idle), "older_events_not_delivering": older},
    )


# Evaluated by event_performance itself on every run, even one that materializes nothing (no event changed):
# as separate checks they would be skipped with it, and the UI would show "Skipped" instead of the state.
@dg.asset(
    deps=[baselines],
    **_ASSET,
    output_required=False,
    check_specs=[SUFFICIENCY, DELIVERY],  # skipped when no event's baselines changed
    description="Per meter and event: baseline, actual and reduction (kWh), average kW, intervals expected "
    "and present, status. Its metadata has every event on its own: `event <id>` lists every enrolled meter "
    "(status and why, numbers), `baseline explanation <id>` says why each baseline is what it is (look-back "
    "days used and excluded by reason, the adjustment window and its factor before and after the cap), "
    "`chart <id>` draws the aggregate baseline against actual, `chart details <id>` "
    "adds the best, median and worst meter; `programs` has per-program "
    "totals and `meters_lacking_data` names the meters without full numbers and what would clear it.",
)
def event_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    # matplotlib costs 0.8 s of imports: only where charts are drawn, not on every code-location load
    from leap_orchestration.settlement import charts

    now = dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(days=ACTIONABLE_DAYS)
    with warehouse.warehouse().connect() as con:
        built_before = context.instance.get_latest_materialization_event(context.asset_key) is not None
        if built_before and not settled_since_performance(con):
            context.log.info("no event's baselines changed since the last build: nothing to materialize")
            # no output: the roll-ups below skip too, and the UI keeps the last materialization
            yield _sufficiency(con, since)
            yield _delivery(con, since)
            return
        rows = rebuild_event_performance(con, now)
        summary = views.events(con)
        per_event = {}
        # every event, newest first: a table of its meters and a small chart, both shown inline by the UI,
        # then the full report (per-meter panels, best and worst) that the UI opens in a dialog
        for event in summary:
            event_id = event["event"]
            per_event[f"event {event_id}"] = table(views.event_meters(con, event_id))
            per_event[f"baseline explanation {event_id}"] = table(views.event_explanations(con, event_id))
            per_event[f"chart {event_id}"] = dg.MetadataValue.md(charts.inline_chart(con, event_id))
            per_event[f"chart details {event_id}"] = dg.MetadataValue.md(charts.event_report(con, event_id))
        programs, lacking = views.program_totals(con), views.lacking_data(con)
        checks = [_sufficiency(con, since), _delivery(con, since)]
    yield dg.MaterializeResult(
        check_results=checks,
        metadata={
            "dagster/row_count": rows,
            "events": table(summary),
            "programs": table(programs),
            "meters_lacking_data": table(lacking),
            **per_event,
        },
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
        rows = rebuild_program_events(con)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "events": table(views.events(con)),
                "programs": table(views.program_totals(con)),
            }
        )


@dg.asset(
    deps=[event_performance],
    **_ASSET,
    description="Per program, season and meter: average kW over all the season's event hours, a missed event "
    "counting as zero (as ConnectedSolutions pays).",
)
def season_performance(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.warehouse().connect() as con:
        rows = rebuild_seasons(con)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "seasons": table(views.seasons(con))}
        )


@dg.asset_check(
    asset=baselines,
    blocking=False,
    pool="duckdb",
    automation_condition=dg.AutomationCondition.eager(),  # with its asset, in the same run
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


SETTLEMENT_ASSETS = [
    baselines,
    event_performance,
    event_performance_hourly,
    program_event_performance,
    season_performance,
]
SETTLEMENT_CHECKS = [baselines_cover_events]
