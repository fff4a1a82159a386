"""The Dagster Definitions: assets, checks, jobs, sensors and resources of the project."""

import dagster as dg

from assets.configuration import meter_configuration
from assets.intake import interval_intake, interval_readings_unique
from leap_orchestration.resources import default_resources
from sensors.landing import configuration_job, configuration_sensor, intake_job, landing_inbox_sensor

defs = dg.Definitions(
    assets=[meter_configuration, interval_intake],
    asset_checks=[interval_readings_unique],
    jobs=[intake_job, configuration_job],
    sensors=[landing_inbox_sensor, configuration_sensor],
    resources=default_resources(),
)
