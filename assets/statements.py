"""Partner statements: each partner's versioned performance statements, season statements and the data it still
owes, delivered to its SFTP tree or its bucket. The logic lives in leap_orchestration/statements."""

import datetime as dt

import dagster as dg

from assets.settlement import baselines, table
from leap_orchestration.config.loader import load_properties
from leap_orchestration.resources import (
    BucketStoreResource,
    ConfigurationResource,
    LandingStoreResource,
    WarehouseResource,
)
from leap_orchestration.statements.deliver import DeliveryError, Destinations
from leap_orchestration.statements.issue import issue_statements

SHOWN = 50  # rows of the owed-data table in the UI (all of them are in each partner's missing-intervals.csv)


class StatementsConfig(dg.Config):
    """`force`: rebuild every event's statements (a new version is still issued only where content changed)."""

    force: bool = False


@dg.asset(
    deps=[baselines],
    group_name="statements",
    kinds={"duckdb"},
    owners=["team:settlement"],
    pool="duckdb",
    description="Per partner: a statement per event and per season, versioned V1, V2, ... (a new version only "
    "when a number or the status changes, with changes.json naming what changed and why), PRELIMINARY until "
    "the readings are final and the program's data deadline has passed, and missing-intervals.csv: the readings "
    "still owed and by when. Written to performance/ in the partner's SFTP tree or its connectors' buckets "
    "(docs/statements.md). Metadata: versions issued by this run and the data owed, per partner.",
)
def performance_statements(
    context: dg.AssetExecutionContext,
    config: StatementsConfig,
    warehouse: WarehouseResource,
    landing_store: LandingStoreResource,
    participant_buckets: BucketStoreResource,
    configuration: ConfigurationResource,
) -> dg.MaterializeResult:
    now = dt.datetime.now(dt.UTC)
    destinations = Destinations(
        landing_store.store(), participant_buckets.buckets(), load_properties(configuration.folder())
    )
    with warehouse.warehouse().connect() as con:
        try:
            report = issue_statements(con, destinations, now, run_id=context.run.run_id, force=config.force)
        except DeliveryError as exc:
            raise dg.Failure(
                f"a statement could not be delivered ({exc}); nothing was recorded for it, the next run retries"
            ) from exc
        owed = report.owed
        latest = _per_partner(con)
    for issued in report.issued:
        context.log.info(
            "issued %s V%s (%s) to %s",
            issued["statement"],
            issued["version"],
            issued["status"],
            issued["partner"],
        )
    owed_rows = owed.select(
        "partner_id",
        "meter_id",
        "window_start_local",
        "intervals",
        "windows",
        "events",
        "submission_deadline_utc",
    ).head(SHOWN)
    return dg.MaterializeResult(
        metadata={
            # what an operator looks for first: each partner's statements, then the data partners owe
            "partners": table(latest),
            "data_owed": table(owed_rows.to_dicts()),
            "data_owed_windows": owed.height,
            "data_owed_intervals": int(owed["intervals"].sum()) if owed.height else 0,
            "issued_this_run": table(report.issued),
            "statements_unchanged": report.unchanged,
        }
    )


def _per_partner(con) -> list[dict]:
    rows = con.execute(
        """WITH latest AS (
               SELECT * FROM statement_versions
               QUALIFY row_number() OVER (PARTITION BY partner_id, statement_id ORDER BY version DESC) = 1)
           SELECT partner_id, count(*) FILTER (WHERE kind = 'event') AS event_statements,
                  count(*) FILTER (WHERE kind = 'season') AS season_statements,
                  count(*) FILTER (WHERE status = 'FINAL') AS final,
                  strftime(max(issued_at) AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M UTC') AS last_issued
           FROM latest GROUP BY partner_id ORDER BY partner_id"""
    ).fetchall()
    keys = ("partner", "event_statements", "season_statements", "final", "last_issued")
    return [dict(zip(keys, r, strict=True)) for r in rows]
