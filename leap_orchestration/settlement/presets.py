"""Baseline presets: one day-matching engine, parameterised (docs/baselines.md is the definition implemented).

A preset maps each day type of the event day to a candidate-day rule, and names its day-of adjustment. Which
parameters come from a program's own manual and which are the project's reading is recorded per preset in
`docs/baselines.md`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Day types. `weekday` = Monday-Friday and not a holiday of the program's calendar.
WEEKDAY, WEEKEND_HOLIDAY, SATURDAY, SUNDAY_HOLIDAY = (
    "weekday",
    "weekend_holiday",
    "saturday",
    "sunday_holiday",
)


@dataclass(frozen=True)
class DayRule:
    days: int  # Y: eligible days taken, most recent first
    selection: str = "all"  # all | highest | middle
    keep: int | None = None  # X for `highest`
    lookback_days: int = 45
    first_day_back: int = 1  # 1: candidates start at D-1; 2: at D-2
    low_usage: bool = (
        False  # drop days below 25 % of the Y days' mean event-window load, replace with older ones
    )


@dataclass(frozen=True)
class Adjustment:
    kind: str  # multiplicative | additive
    # windows in hours relative to the event: (start offset, end offset, anchor) with anchor "start" or "end";
    # [start - 4h, start - 1h) is (-4, -1, "start"), [end + 1h, end + 3h) is (1, 3, "end")
    windows: tuple[tuple[float, float, str], ...]
    cap: float | None = None  # multiplicative ratio clamped to [1 - cap, 1 + cap]; None: no clamp


@dataclass(frozen=True)
class Preset:
    name: str
    day_types: str  # "weekday/weekend" (two types) or "weekday/saturday/sunday" (three types)
    rules: dict[
        str, DayRule
    ]  # day type -> rule; a day type without a rule has no baseline (INSUFFICIENT_DAYS)
    adjustment: Adjustment | None = None
    same_day: bool = False  # pjm_same_day_3p2: the baseline is the mean of the event day's adjustment window
    zero: bool = False  # no_baseline: baseline is 0 everywhere


_BEFORE_4_1 = (-4.0, -1.0, "start")
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "caiso_10in10",
            "weekday/weekend",
            {WEEKDAY: DayRule(10), WEEKEND_HOLIDAY: DayRule(4)},
            Adjustment("multiplicative", (_BEFORE_4_1,), cap=0.20),
        ),
        Preset(
            "caiso_res_5in10",
            "weekday/weekend",
            {WEEKDAY: DayRule(10, "highest", 5), WEEKEND_HOLIDAY: DayRule(4)},
            Adjustment("multiplicative", (_BEFORE_4_1, (1.0, 3.0, "end")), cap=0.40),
        ),
        Preset(
            "pjm_high4of5",
            "weekday/saturday/sunday",
            {
                WEEKDAY: DayRule(5, "highest", 4, low_usage=True),
                SATURDAY: DayRule(3, "highest", 2),
                SUNDAY_HOLIDAY: DayRule(3, "highest", 2),
            },
            Adjustment("additive", (_BEFORE_4_1,)),
        ),
        Preset(
            "pjm_same_day_3p2",
            "weekday/weekend",
            {},
            Adjustment("additive", (_BEFORE_4_1, (1.0, 3.0, "end"))),
            same_day=True,
        ),
        Preset(
            "nyiso_avg_day",
            "weekday/saturday/sunday",
            {
                WEEKDAY: DayRule(10, "highest", 5, lookback_days=30, first_day_back=2, low_usage=True),
                SATURDAY: DayRule(3, "highest", 2),
                SUNDAY_HOLIDAY: DayRule(3, "highest", 2),
            },
        ),
        Preset(
            "nyiso_weather_sensitive",
            "weekday/saturday/sunday",
            {
                WEEKDAY: DayRule(10, "highest", 5, lookback_days=30, first_day_back=2, low_usage=True),
                SATURDAY: DayRule(3, "highest", 2),
                SUNDAY_HOLIDAY: DayRule(3, "highest", 2),
            },
            Adjustment("multiplicative", ((-4.0, -2.0, "start"),), cap=0.20),
        ),
        Preset(
            "miso_10day",
            "weekday/weekend",
            {WEEKDAY: DayRule(10)},
            Adjustment("multiplicative", ((-3.0, 0.0, "start"),), cap=0.20),
        ),
        Preset(
            "ercot_middle8of10",
            "weekday/weekend",
            {WEEKDAY: DayRule(10, "middle"), WEEKEND_HOLIDAY: DayRule(10, "middle")},
            Adjustment("multiplicative", ((-3.0, -1.0, "start"),), cap=0.20),
        ),
        Preset("no_baseline", "weekday/weekend", {}, zero=True),
    )
}

# Overrides a program may set in programs.xml (<override name=".." value=".."/>), applied to every day rule.
_RULE_OVERRIDES = {
    "days": int,
    "keep": int,
    "lookback_days": int,
    "first_day_back": int,
    "selection": str,
    "low_usage": lambda v: {"true": True, "false": False}[v.lower()],
}
SELECTIONS = ("all", "highest", "middle")
KINDS = ("multiplicative", "additive")


def preset_for(name: str, overrides: dict[str, str] | None = None) -> Preset:
    """The preset with a program's overrides applied: day-rule fields, `cap` (a number in [0, 1] or `none`) and
    `kind` of the adjustment. An override the preset cannot use, or a value out of range, is a ValueError (the
    configuration load reports it), never silently ignored."""
    preset = PRESETS[name]
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_RULE_OVERRIDES) - {"cap", "kind"})
    if unknown:
        raise ValueError(f"unknown override(s) for preset {name}: {', '.join(unknown)}")
    rule_names = [k for k in overrides if k in _RULE_OVERRIDES]
    adjustment_names = [k for k in overrides if k in ("cap", "kind")]
    if rule_names and not preset.rules:
        raise ValueError(f"preset {name} has no candidate days: {', '.join(rule_names)} cannot apply")
    if adjustment_names and (preset.adjustment is None or preset.same_day):
        raise ValueError(
            f"preset {name} has no day-of adjustment: {', '.join(adjustment_names)} cannot apply"
        )
    try:
        changes = {k: _RULE_OVERRIDES[k](overrides[k]) for k in rule_names}
        cap = overrides.get("cap")
        cap_value = None if cap is None or cap.lower() == "none" else float(cap)
    except (ValueError, KeyError):
        raise ValueError(f"preset {name}: bad override value in {overrides}") from None
    rules = {t: dataclasses.replace(r, **changes) for t, r in preset.rules.items()}
    for r in rules.values():
        if (
            r.selection not in SELECTIONS
            or r.days < 1
            or r.lookback_days < r.first_day_back
            or r.first_day_back < 1
        ):
            raise ValueError(
                f"preset {name}: selection must be one of {SELECTIONS}, days >= 1 and lookback_days >= "
                f"first_day_back >= 1 (got {r})"
            )
        if r.selection == "highest" and not (r.keep and 1 <= r.keep <= r.days):
            raise ValueError(
                f"preset {name}: selection 'highest' needs 1 <= keep <= days (got keep={r.keep}, days={r.days})"
            )
        if r.selection == "middle" and r.days < 3:
            raise ValueError(f"preset {name}: selection 'middle' needs days >= 3")
    adjustment = preset.adjustment
    if adjustment_names:
        kind = overrides.get("kind", adjustment.kind)
        if kind not in KINDS or (cap_value is not None and not 0 <= cap_value <= 1):
            raise ValueError(f"preset {name}: kind must be one of {KINDS} and cap in [0, 1] or none")
        adjustment = dataclasses.replace(
            adjustment, kind=kind, cap=adjustment.cap if cap is None else cap_value
        )
    return dataclasses.replace(preset, rules=rules, adjustment=adjustment)
