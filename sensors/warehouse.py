"""The warehouse's daily upkeep: a job and its schedule (what it does per backend: Warehouse.maintain)."""

import dagster as dg

from leap_orchestration.intake.process import COMMIT_QUEUE
from leap_orchestration.resources import WarehouseResource


@dg.op(
    pool="duckdb",  # on the file it needs the one writer's place; on DuckLake it takes one of the slots
    out=dg.Out(dg.Nothing),
    description="Warehouse upkeep: the DuckDB file's CHECKPOINT, or DuckLake's (inlined rows written out, "
    "small files merged, old snapshots expired, unreferenced files deleted). The figures are its metadata.",
)
def maintain_warehouse(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    wh = warehouse.warehouse()
    # intake's loads, the lake's most frequent writers, wait meanwhile rather than make the checkpoint redo
    with wh.hold(COMMIT_QUEUE):
        figures = wh.maintain()
    context.log.info(f"warehouse upkeep: {figures}")
    context.add_output_metadata(figures)


@dg.job(description="Daily warehouse upkeep (see the maintain_warehouse step's metadata for what it did).")
def warehouse_maintenance():
    maintain_warehouse()


warehouse_maintenance_schedule = dg.ScheduleDefinition(
    job=warehouse_maintenance,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 03:30 UTC. Writers go on meanwhile (a checkpoint that loses to one runs again).",
)
