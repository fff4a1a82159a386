"""The Dagster Definitions: assets, checks, jobs, sensors and resources of the project."""

import dagster as dg

from assets.configuration import meter_configuration
from assets.health import HEALTH_CHECKS, with_freshness
from assets.intake import interval_intake, interval_readings_unique
from assets.landing_zone import standardized_meter_hours
from assets.settlement import SETTLEMENT_ASSETS, SETTLEMENT_CHECKS
from assets.statements import performance_statements
from leap_orchestration.resources import default_resources
from leap_orchestration.run_liveness import in_process_with_liveness
from sensors.landing import configuration_job, configuration_sensor, intake_job, landing_inbox_sensor
from sensors.landing_zone import landing_zone_job, landing_zone_schedule
from sensors.settlement import settlement_automation, with_automation
from sensors.warehouse import warehouse_maintenance, warehouse_maintenance_schedule

defs = dg.Definitions(
    # freshness and automation policies applied in one place each (assets/health.py, sensors/settlement.py)
    assets=with_automation(
        with_freshness(
            [
                meter_configuration,
                interval_intake,
                standardized_meter_hours,
                *SETTLEMENT_ASSETS,
                performance_statements,
            ]
        )
    ),
    asset_checks=[interval_readings_unique, *SETTLEMENT_CHECKS, *HEALTH_CHECKS],
    jobs=[intake_job, configuration_job, landing_zone_job, warehouse_maintenance],
    sensors=[landing_inbox_sensor, configuration_sensor, settlement_automation],
    schedules=[landing_zone_schedule, warehouse_maintenance_schedule],
    resources=default_resources(),
    # Every job: steps share one process (the duckdb pool runs them one at a time anyway, and a step subprocess
    # costs ~8 s of imports on 2 cores), and a run killed outright never keeps its pool slot (run_liveness.py).
    executor=in_process_with_liveness,
)
