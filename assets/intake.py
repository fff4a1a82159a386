"""Intake: process complete pending uploads, from SFTP partners and GCS connectors alike, into accepted/ or
failed/ and the warehouse tables."""

import dataclasses
import traceback

import dagster as dg

from leap_orchestration import settings
from leap_orchestration.config.errors import ConfigError
from leap_orchestration.config.loader import load_configuration
from leap_orchestration.intake import outcomes as outcomes_view
from leap_orchestration.intake.discovery import settled_uploads
from leap_orchestration.intake.process import Upload, process_upload
from leap_orchestration.resources import ConfigurationResource, LandingStoreResource, WarehouseResource
from leap_orchestration.stores import LandingStore
from leap_orchestration.warehouse.config_tables import replace_configuration
from leap_orchestration.warehouse.intake_tables import ConfigurationNotLoaded, configuration_loaded

MAX_UPLOADS_PER_RUN = 200  # the whole-graph path catches up in several runs rather than one huge one


class IntakeConfig(dg.Config):
    """Which uploads to take.

    `uploads` (the inbox sensor) and `connector_uploads` (the hourly landing-zone schedule) name exact file
    versions, "<key>|<version>", in the partners' landing store and in the landing zone. With neither, the run
    catches up on every complete pending upload of the stores named in `sources`.
    """

    uploads: list[str] = []
    connector_uploads: list[str] = []
    sources: list[str] = ["partners", "connectors"]


def _named(entries: list[str], landing: LandingStore) -> list[Upload]:
    # tenant and inbox come from the store itself, never from run config: a key must sit directly in an inbox
    inboxes = {inbox: tenant for tenant, inbox in landing.list_tenant_inboxes()}
    chosen = []
    for entry in entries:
        key, _, version = entry.rpartition("|")
        inbox = key.rsplit("/", 1)[0] + "/"
        try:
            obj = landing.stat(key) if inbox in inboxes else None
        except ValueError:  # a key the store refuses: never requested by the sensors, so never taken
            obj = None
        if obj is not None and obj.version == version:
            chosen.append(Upload(inboxes[inbox], inbox, obj))
    return chosen


def _selected(
    config: IntakeConfig, landing_store: LandingStoreResource, landing_zone: LandingStoreResource
) -> list[tuple[LandingStore, Upload]]:
    named = bool(config.uploads or config.connector_uploads)
    chosen = []
    for source, resource, entries in (
        ("partners", landing_store, config.uploads),
        ("connectors", landing_zone, config.connector_uploads),
    ):
        if (named and not entries) or (not named and source not in config.sources):
            continue
        store = resource.store()
        uploads = (
            _named(entries, store)
            if named
            else settled_uploads(store, settings.settle_seconds())[:MAX_UPLOADS_PER_RUN]
        )
        connectors = resource.connector_for_inbox()
        chosen += [(store, dataclasses.replace(u, connector_id=connectors.get(u.inbox))) for u in uploads]
    return chosen


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "uploads",
            description="One row per uploaded file version: status, counts, run.",
            deps=["meter_configuration"],
            skippable=True,
            kinds={"duckdb"},
            owners=["team:data-engineering"],
        ),
        dg.AssetSpec(
            "upload_errors",
            description="Per-line, per-column errors of failed uploads (capped).",
            skippable=True,
            kinds={"duckdb"},
            owners=["team:data-engineering"],
        ),
        dg.AssetSpec(
            "interval_readings",
            description="Standardized 15-minute readings, one current row per "
            "meter and interval; earlier versions in interval_readings_superseded.",
            skippable=True,
            kinds={"duckdb"},
            owners=["team:data-engineering"],
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "uploads_accepted",
            asset="uploads",
            description="WARN when an upload of the run failed: which files, the error codes and the first error "
            "rows. The partner has the same in failed/<file>/; the fix is theirs (upload a corrected file).",
        )
    ],
    group_name="intake",
    pool="duckdb",
)
def interval_intake(
    context: dg.AssetExecutionContext,
    config: IntakeConfig,
    landing_store: LandingStoreResource,
    landing_zone: LandingStoreResource,
    warehouse: WarehouseResource,
    configuration: ConfigurationResource,
):
    wh = warehouse.warehouse()
    _load_configuration_if_never_loaded(context, wh, configuration)
    outcomes, stuck = [], []
    for store, upload in _selected(config, landing_store, landing_zone):
        try:
            outcome = process_upload(store, wh, upload, run_id=context.run.run_id)
        except ConfigurationNotLoaded:
            raise
        except Exception:  # noqa: BLE001 - infrastructure (store, warehouse): this file stays pending, others go on
            context.log.error(f"{upload.obj.key} stays pending: {traceback.format_exc()}")
            stuck.append(upload.obj.key)
            continue
        context.log.info(
            "%s %s: %s (%s rows, %s errors, job %s)",
            upload.tenant,
            upload.obj.name,
            outcome.status,
            outcome.rows,
            outcome.errors,
            upload.job_id,
        )
        outcomes.append(outcome)
    done = [o for o in outcomes if o.status != "SKIPPED"]
    failed_jobs = [o.upload.job_id for o in done if o.status == "FAILED"]
    with wh.connect() as con:
        readings = con.execute("SELECT count(*) FROM interval_readings").fetchall()[0][0]
        errors = con.execute("SELECT count(*) FROM upload_errors").fetchall()[0][0]
        recent = outcomes_view.recent_uploads(con)
        failed = outcomes_view.failed_uploads(con, failed_jobs)
        by_code = outcomes_view.code_counts(con, failed_jobs)
        first = outcomes_view.first_errors(con, failed_jobs)
    _tag_run(context, done, failed)
    loaded = sum(o.rows for o in done if o.status == "COMPLETED")
    # A run that names its uploads (sensor and schedule micro-batches) materializes only what changed, so a
    # batch whose uploads all failed starts no settlement and publishes nothing. A catch-up run (nothing named)
    # always materializes: the downstream steps in the same run (settlement) would be skipped otherwise.
    quiet = bool(config.uploads or config.connector_uploads)
    if done or not quiet:
        yield dg.MaterializeResult(
            asset_key="uploads",
            metadata={
                "this_run": _table([_processed(o) for o in done], PROCESSED_COLUMNS),
                "recent_uploads": _table(recent, RECENT_COLUMNS),
                "accepted": sum(o.status == "COMPLETED" for o in done),
                "failed": len(failed_jobs),
            },
        )
    yield _uploads_accepted(done, failed, by_code, first)
    if failed_jobs or not quiet:
        yield dg.MaterializeResult(
            asset_key="upload_errors",
            metadata={
                "dagster/row_count": errors,
                "errors_this_run": _table(by_code, CODE_COLUMNS),
                "first_errors_this_run": _table(first, ERROR_COLUMNS),
            },
        )
    if loaded or not quiet:
        yield dg.MaterializeResult(
            asset_key="interval_readings",
            metadata={"dagster/row_count": readings, "rows_loaded_this_run": loaded},
        )
    if stuck:  # after the others' results: the run shows red, and the next run takes these files again
        raise dg.Failure(
            description=f"{len(stuck)} upload(s) could not be processed and stay pending: "
            + ", ".join(stuck[:20]),
            metadata={"pending": stuck},
        )


PROCESSED_COLUMNS = (
    ("source", "string"),
    ("file", "string"),
    ("status", "string"),
    ("rows", "int"),
    ("errors", "int"),
    ("job_id", "string"),
)
RECENT_COLUMNS = (
    ("source", "string"),
    ("file", "string"),
    ("received_utc", "string"),
    ("processed_utc", "string"),
    ("status", "string"),
    ("rows", "int"),
    ("errors", "int"),
    ("top_codes", "string"),
    ("run", "string"),
)
FAILED_COLUMNS = (
    ("source", "string"),
    ("file", "string"),
    ("errors", "int"),
    ("top_codes", "string"),
    ("job_id", "string"),
)
CODE_COLUMNS = (("code", "string"), ("column", "string"), ("count", "int"))
ERROR_COLUMNS = (
    ("file", "string"),
    ("line", "int"),
    ("column", "string"),
    ("code", "string"),
    ("message", "string"),
)


def _table(rows: list[dict], columns: tuple[tuple[str, str], ...]) -> dg.TableMetadataValue:
    return dg.TableMetadataValue(
        records=[dg.TableRecord({name: row[name] for name, _ in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns]),
    )


def _processed(o) -> dict:
    source = o.upload.connector_id or o.upload.tenant
    return {
        "source": source,
        "file": o.upload.obj.name,
        "status": o.status,
        "rows": o.rows,
        "errors": o.errors,
        "job_id": o.upload.job_id,
    }


def _tag_run(context: dg.AssetExecutionContext, done: list, failed: list[dict]) -> None:
    """Run tags the Runs list shows and filters on (tag:leap/outcome=failed-uploads): a run whose uploads
    failed succeeds (the pipeline did its job), so its status alone can't say so."""
    outcome = "no-uploads" if not done else "failed-uploads" if failed else "all-accepted"
    tags = {"leap/outcome": outcome}
    if failed:
        tags["leap/failed_uploads"] = str(len(failed))
    context.instance.add_run_tags(context.run.run_id, tags)


def _uploads_accepted(
    done: list, failed: list[dict], by_code: list[dict], first: list[dict]
) -> dg.AssetCheckResult:
    if not failed:
        what = f"all {len(done)} upload(s) of this run accepted" if done else "no upload in this run"
        return dg.AssetCheckResult(
            check_name="uploads_accepted", asset_key="uploads", passed=True, metadata={"summary": what}
        )
    codes = ", ".join(f"{c['code']} ×{c['count']}" for c in by_code[:5])
    files = ", ".join(f"{f['source']}/{f['file']}" for f in failed[:5]) + (" …" if len(failed) > 5 else "")
    return dg.AssetCheckResult(
        check_name="uploads_accepted",
        asset_key="uploads",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(failed)} of {len(done)} upload(s) failed: {files}. Codes: {codes}. The partner or "
        "connector must upload a corrected file (their failed/<file>/ has errors.csv); docs/error-codes.md "
        "explains each code.",
        metadata={
            "failed_uploads": _table(failed, FAILED_COLUMNS),
            "errors_by_code": _table(by_code, CODE_COLUMNS),
            "first_errors": _table(first, ERROR_COLUMNS),
        },
    )


def _load_configuration_if_never_loaded(context, wh, configuration: ConfigurationResource) -> None:
    """A fresh home (any job, e.g. the hourly connector run before the configuration sensor's first run) loads the
    XML configuration first, instead of leaving every upload pending; after that, meter_configuration reloads it."""
    with wh.connect() as con:
        if configuration_loaded(con):
            return
        try:
            cfg = load_configuration(configuration.folder())
        except ConfigError as exc:
            raise dg.Failure(
                description=f"No meter configuration was ever loaded, and the XML configuration is "
                f"rejected: {exc}"
            ) from None
        counts = replace_configuration(con, cfg)
    context.log.info(
        "no meter configuration was ever loaded: loaded %s first (%s)", cfg.fingerprint[:12], counts
    )


@dg.asset_check(
    asset="interval_readings",
    description="At most one current row per meter and interval.",
    blocking=False,
    pool="duckdb",
)  # even a read-only open conflicts with another process writing
def interval_readings_unique(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.warehouse().connect(read_only=True) as con:
        dups = con.execute("""SELECT count(*) FROM (SELECT meter_id, interval_start_utc FROM interval_readings
                              GROUP BY ALL HAVING count(*) > 1)""").fetchall()[0][0]
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicate_keys": dups})
