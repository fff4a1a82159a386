"""The landing-zone connector's output: standardized meter-hours in the participants' buckets."""

import dagster as dg

from leap_orchestration.config.loader import load_properties
from leap_orchestration.resources import BucketStoreResource, ConfigurationResource, WarehouseResource
from leap_orchestration.standardized.publish import publish_standardized


@dg.asset(
    deps=["interval_readings", "meter_configuration"],
    description="One `bm:meterData` XML object per connector, meter and complete UTC hour, at "
    "`<participant bucket>/<connector>/standardized/<meter number>/<YYYY-MM-DDTHH:00:00>`; an hour is "
    "republished when a later upload changes it. Published objects are tracked in `standardized_hours`.",
    group_name="landing_zone",
    kinds={"gcs", "xml"},
    owners=["team:data-engineering"],
    pool="duckdb",
)
def standardized_meter_hours(
    context: dg.AssetExecutionContext,
    configuration: ConfigurationResource,
    warehouse: WarehouseResource,
    participant_buckets: BucketStoreResource,
):
    connectors = load_properties(configuration.folder()).connectors
    wh = warehouse.warehouse()
    report = publish_standardized(
        wh, participant_buckets.buckets(), list(connectors), run_id=context.run.run_id
    )
    context.log.info(
        "published %s meter-hours (%s republished), %s uploads standardized",
        report.published,
        report.republished,
        report.jobs,
    )
    if report.unknown_connectors:
        context.log.warning(
            "readings delivered by connectors no longer in properties.xml are not published: %s",
            ", ".join(report.unknown_connectors),
        )
    if report.failed:
        raise dg.Failure(
            f"{report.failed} meter-hour objects could not be written; the next run retries them",
            metadata={"published": report.published, "failed": report.failed},
        )
    with wh.connect(read_only=True) as con:
        total = con.execute("SELECT count(*) FROM standardized_hours").fetchall()[0][0]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "published_this_run": report.published,
            "republished_this_run": report.republished,
            "uploads_standardized": report.jobs,
            "sample_objects": dg.MetadataValue.md(
                "\n".join(f"- `{b}/{k}`" for b, k in report.objects[:10]) or "none"
            ),
        }
    )
