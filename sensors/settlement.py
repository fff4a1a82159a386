"""When settlement runs: declarative automation, no hand-written sensor, schedule or job.

`baselines` runs after new readings or a new configuration (`eager`: any materialization of `interval_readings`
or `meter_configuration`; an intake run whose uploads all failed or that took no file materializes neither) and
at minute 30 of every hour, to settle events that ended since (cheap when nothing changed: inputs are compared
by digest). Everything below it (`event_performance`, its roll-ups and the checks, and the partners'
`performance_statements`) runs `eager` after it, in the same run; `event_performance` skips its output when no event's baselines changed, so the roll-ups skip too.

`settlement_automation` evaluates these conditions every 30 s. Its runs carry a priority below intake's, so a
partner's upload queued at the same time goes first.
"""

import dagster as dg

from assets.specs import map_named_specs

SETTLE_EVERY_HOUR = dg.AutomationCondition.cron_tick_passed("30 * * * *", "UTC")

AUTOMATION: dict[str, dg.AutomationCondition] = {
    # `since_last_handled`: an hourly tick that passes while baselines is running is kept, not lost
    "baselines": (dg.AutomationCondition.eager() | SETTLE_EVERY_HOUR.since_last_handled())
    & ~dg.AutomationCondition.in_progress(),
    **{
        key: dg.AutomationCondition.eager()
        for key in (
            "event_performance",
            "event_performance_hourly",
            "program_event_performance",
            "season_performance",
            "performance_statements",
        )
    },
}


def with_automation(assets: list) -> list:
    """`assets` with AUTOMATION's condition on each spec it names; everything else unchanged."""
    return map_named_specs(
        assets,
        AUTOMATION,
        lambda spec: spec.replace_attributes(automation_condition=AUTOMATION[spec.key.to_user_string()]),
    )


settlement_automation = dg.AutomationConditionSensorDefinition(
    "settlement_automation",
    target=dg.AssetSelection.assets(*AUTOMATION),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    # below the intake job's priority (10): a queued upload run starts before a queued settlement
    run_tags={"dagster/priority": "-1", "leap/settlement": "automation"},
    description="Settles after new readings or a new configuration, and every hour at minute 30 (the "
    "conditions are on the settlement assets).",
)
