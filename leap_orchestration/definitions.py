"""The Dagster Definitions: assets, checks, jobs, sensors and resources of the project."""

import dagster as dg

from assets.configuration import meter_configuration
from assets.intake import interval_intake, interval_readings_unique
from assets.landing_zone import standardized_meter_hours
from leap_orchestration.resources import default_resources
from sensors.landing import configuration_job, configuration_sensor, intake_job, landing_inbox_sensor
from sensors.landing_zone import landing_zone_job, landing_zone_schedule

defs = dg.Definitions(
    assets=[meter_configuration, interval_intake, standardized_meter_hours],
    asset_checks=[interval_readings_unique],
    jobs=[intake_job, configuration_job, landing_zone_job],
    sensors=[landing_inbox_sensor, configuration_sensor],
    schedules=[landing_zone_schedule],
    resources=default_resources(),
)
