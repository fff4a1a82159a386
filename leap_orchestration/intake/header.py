"""The header line: canonical column names, aliases, unknown and misspelt columns."""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field

from leap_orchestration.intake.codes import FileLevelError, Finding

METER, START, END = "meter_uuid", "interval_start_time_utc", "interval_end_time_utc"
NET, CONSUMED, GENERATED = "energy_net_kwh", "energy_consumed_kwh", "energy_generated_kwh"
FINAL, REGION = "final", "region"
KNOWN_COLUMNS = (METER, START, END, NET, CONSUMED, GENERATED, FINAL, REGION)
# Public copies of the platform's API spec call the meter column meter_id.
ALIASES = {"meter_id": METER}
REQUIRED = {METER: "MTR_0001", START: "STM_0001", END: "ETM_0001"}


@dataclass
class Header:
    names: list[str]  # one frame column per header field, canonical where known
    findings: list[Finding] = field(default_factory=list)

    def has(self, column: str) -> bool:
        return column in self.names

    @property
    def kept(self) -> list[tuple[int, str]]:
        """(position, name) of the known columns, the only ones read into frames: an unknown column is only a
        warning (HDR_0003), and thousands of them must not cost memory."""
        return [(i, name) for i, name in enumerate(self.names) if name in KNOWN_COLUMNS]


def parse_header(raw: bytes) -> Header:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileLevelError(
            Finding(1, "", "FIL_0002", f"The header line is not UTF-8 text ({exc.reason}).")
        ) from exc
    try:
        fields = next(csv.reader([text]), [])
    except (
        csv.Error
    ) as exc:  # e.g. an unclosed quote or a stray CR: the header can't be read, nothing else can
        raise FileLevelError(
            Finding(1, "", "HDR_0001", f"The header line can't be read as CSV ({exc}).")
        ) from exc
    normalized = [ALIASES.get(f.strip().lower(), f.strip().lower()) for f in fields]
    if not any(n in KNOWN_COLUMNS for n in normalized):
        shown = text[:80]
        raise FileLevelError(
            Finding(
                1,
                "",
                "HDR_0001",
                f"The first line '{shown}' is not a header: expected column names such as {METER}.",
            )
        )
    findings: list[Finding] = []
    names: list[str] = []
    for original, name in zip(fields, normalized, strict=True):
        if name in names:
            findings.append(
                Finding(1, original, "HDR_0002", f"Column '{original}' appears more than once in the header.")
            )
            name = f"{name}#{len(names) + 1}"
        elif name not in KNOWN_COLUMNS:
            close = difflib.get_close_matches(
                name, [c for c in KNOWN_COLUMNS if c not in normalized], n=1, cutoff=0.8
            )
            if close:
                findings.append(
                    Finding(
                        1, original, "HDR_0004", f"Unknown column '{original}': did you mean '{close[0]}'?"
                    )
                )
            else:
                findings.append(Finding(1, original, "HDR_0003", f"Unknown column '{original}' is ignored."))
        names.append(name)
    for column, code in REQUIRED.items():
        if column not in names:
            findings.append(Finding(1, column, code, f"Column '{column}' is missing from the header."))
    return Header(names, findings)
