"""The meter configuration in force: XML files validated, then loaded all-or-nothing."""

import dagster as dg

from leap_orchestration.config.errors import ConfigError
from leap_orchestration.config.loader import load_configuration
from leap_orchestration.resources import ConfigurationResource, WarehouseResource
from leap_orchestration.warehouse.config_tables import replace_configuration


@dg.asset(
    group_name="configuration",
    kinds={"duckdb", "xml"},
    owners=["team:data-engineering"],
    pool="duckdb",
    description="Meters, ownership and enrollment windows, programs and DR events from the XML configuration. "
    "A bad file fails this asset and the previous configuration stays in force.",
)
def meter_configuration(
    context: dg.AssetExecutionContext, configuration: ConfigurationResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    try:
        cfg = load_configuration(configuration.folder())
    except ConfigError as exc:
        raise dg.Failure(description=f"Configuration rejected, previous one stays in force: {exc}") from None
    with warehouse.warehouse().connect() as con:
        counts = replace_configuration(con, cfg)
    context.log.info("configuration %s loaded: %s", cfg.fingerprint[:12], counts)
    return dg.MaterializeResult(
        metadata={"fingerprint": cfg.fingerprint, "folder": str(configuration.folder()), **counts},
        data_version=dg.DataVersion(cfg.fingerprint),
    )
