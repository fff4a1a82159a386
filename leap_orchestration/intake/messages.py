"""Plain-English messages that quote the offending value."""

from __future__ import annotations

from leap_orchestration.intake.codes import CATALOGUE

_TEMPLATES = {
    "MTR_0001": "The meter id is empty.",
    "MTR_0002": "'{v}' is not a valid meter UUID (expected 8-4-4-4-12 hexadecimal digits).",
    "MTR_0003": "There is no meter '{v}' in your account.",
    "OWN_0001": "Meter '{v}' is utility-authorized; interval data can only be uploaded for meters you created.",
    "OWN_0002": "Meter '{v}' is not in your account at upload time.",
    "OWN_0003": "Meter '{v}' was not in your account for the interval starting {start}.",
    "STM_0001": "The interval start time is empty.",
    "STM_0002": "'{v}' is not a valid ISO-8601 time with Z or an offset (e.g. 2024-04-01T11:00:00Z).",
    "STM_0003": "Interval start '{v}' is not on a 15-minute boundary, or the interval has not ended yet.",
    "ETM_0001": "The interval end time is empty.",
    "ETM_0002": "'{v}' is not a valid ISO-8601 time with Z or an offset (e.g. 2024-04-01T11:15:00Z).",
    "ETM_0003": "Interval end '{v}' is not on a 15-minute boundary, or is in the future.",
    "DTR_0003": "The interval from '{start}' to '{v}' is not exactly 15 minutes.",
    "CON_0002": "'{v}' is not a valid number for energy consumed.",
    "CON_0003": "'{v}' is not a valid positive number for energy consumed.",
    "GEN_0002": "'{v}' is not a valid number for energy generated.",
    "GEN_0003": "'{v}' is not a valid positive number for energy generated.",
    "NET_0002": "'{v}' is not a valid number for energy net.",
    "NRG_0001": "No valid set of energy values: give net alone, consumed and generated, or all three "
    "(net '{net}', consumed '{con}', generated '{gen}').",
    "NRG_0003": "Consumed '{con}' minus generated '{gen}' does not equal net '{net}'.",
    "FNL_0002": "'{v}' is not a valid value for final (expected true or false).",
    "REG_0002": "'{v}' is not a valid region (letters only).",
    "REG_0003": "'{v}' is not a valid region (expected two upper-case letters, e.g. CA).",
}


def render(code: str, row: dict, column: str) -> str:
    def show(name: str) -> str:
        value = row.get(name)
        return "" if value is None else str(value)[:100]

    template = _TEMPLATES.get(code)
    if template is None:
        return CATALOGUE[code].summary.capitalize() + "."
    return template.format(
        v=show(column),
        start=show("interval_start_time_utc"),
        net=show("energy_net_kwh"),
        con=show("energy_consumed_kwh"),
        gen=show("energy_generated_kwh"),
    )
