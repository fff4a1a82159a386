"""What the Dagster UI tells the operator about what is missing and what is stale.

- `partner_health`, a check on the `uploads` asset: WARN when a configured SFTP partner or connector never
  uploaded, has its uploads failing, or went silent for longer than its `expectedUploadEvery` (properties.xml)
  plus half of it; the description names them and what clears it, the metadata has the table of every source.
  The computation is `leap_orchestration/intake/health.py`. It runs with every job that materializes `uploads`
  (the inbox sensor's runs, and the hourly landing-zone run, which happens even when nothing is new), so a
  silence shows within the hour after it passes its grace.
- `FRESHNESS` / `with_freshness`: time-window freshness policies on the assets operators read, judged by the
  freshness daemon on each asset's last materialization (not on the data's own timestamps, so the demo's
  historical readings are fresh right after the demo's first run).

Wiring (definitions.py): `asset_checks=[..., *HEALTH_CHECKS]` and `assets=with_freshness([...])`.
"""

import datetime as dt

import dagster as dg

from assets.specs import map_named_specs
from leap_orchestration.config.errors import ConfigError
from leap_orchestration.config.loader import load_properties
from leap_orchestration.intake import health
from leap_orchestration.resources import ConfigurationResource, WarehouseResource

HEALTH_COLUMNS = (
    ("source", "string"),
    ("kind", "string"),
    ("state", "string"),
    ("expected", "string"),
    ("last_received", "string"),
    ("last_processed", "string"),
    ("silent_days", "float"),
    ("uploads_7d", "int"),
    ("failed_7d", "int"),
    ("last_status", "string"),
)


@dg.asset_check(
    asset="uploads",
    name="partner_health",
    description="WARN when a configured SFTP partner or connector never uploaded, its latest upload (or most of "
    "its last 7 days' uploads) failed, or nothing came for longer than its expectedUploadEvery in properties.xml "
    "plus half of it. The description says who and what would clear it; the metadata has every source.",
    blocking=False,
    pool="duckdb",
)  # even a read-only open conflicts with another process writing
def partner_health(warehouse: WarehouseResource, configuration: ConfigurationResource) -> dg.AssetCheckResult:
    try:
        properties = load_properties(configuration.folder())
    except ConfigError as exc:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"properties.xml is rejected, so partner health can't be judged: {exc}",
        )
    try:
        with warehouse.warehouse().connect(read_only=True) as con:
            rows = health.partner_health(con, properties)
    except FileNotFoundError:  # no warehouse yet: nothing was ever processed
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="no warehouse yet: no upload was ever processed (run the pipeline first)",
        )
    bad = health.needing_attention(rows)
    counts = {state: sum(r["state"] == state for r in rows) for state in health.STATES}
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.WARN,  # a partner's silence is for the operator to chase, not an error
        description=health.summary(rows),
        metadata={
            "partners": health_table(rows),
            "needs_attention": dg.MetadataValue.text(", ".join(f"{r['source']} ({r['state']})" for r in bad)),
            **{f"{state}_sources": count for state, count in counts.items()},
        },
    )


HEALTH_CHECKS = [partner_health]


def health_table(rows: list[dict]) -> dg.TableMetadataValue:
    """The per-source rows as a narrow table (short strings, days silent to one decimal)."""
    return dg.TableMetadataValue(
        records=[dg.TableRecord(_cells(r)) for r in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in HEALTH_COLUMNS]),
    )


def _cells(row: dict) -> dict:
    silent = row["silent_for"]
    return {
        "source": row["source"],
        "kind": row["kind"],
        "state": row["state"],
        "expected": health.describe_every(row["expected"]),
        "last_received": _when(row["last_received"]),
        "last_processed": _when(row["last_processed"]),
        "silent_days": round(silent.total_seconds() / 86400, 1) if silent is not None else None,
        "uploads_7d": row["uploads_7d"],
        "failed_7d": row["failed_7d"],
        "last_status": row["last_status"] or "",
    }


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


# Judged on each asset's last materialization (the daemon's FreshnessDaemon, every 30 s; shown on the asset's
# Overview). warn_window < fail_window, both at least a minute (Dagster's rule).
FRESHNESS: dict[str, dg.FreshnessPolicy] = {
    # Materialized when an intake run loads readings (a run whose uploads all failed, or with nothing new, does
    # not). Daily uploads are the guide's cadence, so a day without any readings loaded warns and two fail.
    # (Which partner is silent or failing is partner_health's job: this policy says readings keep arriving.)
    "interval_readings": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(days=2), warn_window=dt.timedelta(days=1)
    ),
    # The hourly landing-zone run (minute 0) materializes it every hour: a missed run warns (at 2 h, while the
    # next one runs), two fail (3 h). Whole hours: the UI rounds windows to hours when it shows them ("Fails if
    # more than 2 hours" for 2 h 30), so any other value would be shown wrong.
    "standardized_meter_hours": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=3), warn_window=dt.timedelta(hours=2)
    ),
    # Settlement looks at the events every hour (minute 30) and after new readings, so an event is settled within
    # the hour after it ends: a missed look warns, two fail (whole hours, as above). `baselines` is materialized
    # by every look (the performance tables only when a number changed: their age says nothing about health).
    "baselines": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=3), warn_window=dt.timedelta(hours=2)
    ),
}


def with_freshness(assets: list) -> list:
    """`assets` with FRESHNESS's policy on each spec it names (a policy already on a spec is kept); everything
    else (other assets, checks, specs) is returned unchanged, as the same object."""
    return map_named_specs(
        assets,
        FRESHNESS,
        lambda spec: dg.apply_freshness_policy(
            spec, FRESHNESS[spec.key.to_user_string()], overwrite_existing=False
        ),
    )
