"""The error-code catalogue: the platform's public codes plus the project's own, in the same style.

Public codes (the platform's guide and its public API catalogue): LIN, MTR, STM, ETM, DTR, CON, GEN, NET, NRG, FNL, REG.
Project codes: FIL (file level), HDR (header), LIN_0002-0004, OWN (ownership), DUP (duplicates), SYS (ours, not
the file's: an internal error or repeated crashes, so the file still ends in failed/ and never blocks others).
Every code is documented in docs/error-codes.md; tests check the two lists agree.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Code:
    code: str
    severity: str
    summary: str


CATALOGUE: dict[str, Code] = {
    c.code: c
    for c in [
        Code("FIL_0001", ERROR, "the file is empty"),
        Code("FIL_0002", ERROR, "the file is not UTF-8 text"),
        Code("FIL_0003", ERROR, "the compressed file is corrupt or truncated"),
        Code("FIL_0004", ERROR, "the file is larger than 2,048 MB (after decompression)"),
        Code("FIL_0005", ERROR, "the file name does not end in .csv or .csv.gz"),
        Code("FIL_0006", ERROR, "the file has a header but no data rows"),
        Code("FIL_0007", ERROR, "the file has more than 10,000,000 lines"),
        Code("FIL_0008", ERROR, "the file took longer than 300 seconds to check"),
        Code("FIL_0009", ERROR, "the file name is longer than 200 bytes"),
        Code("SYS_0001", ERROR, "an internal error stopped the check of this file (operators are alerted)"),
        Code("SYS_0002", ERROR, "processing this file was interrupted three times (operators are alerted)"),
        Code("HDR_0001", ERROR, "the first line is not a header with the interval-data column names"),
        Code("HDR_0002", ERROR, "a column name appears twice in the header"),
        Code("HDR_0003", WARNING, "an unknown column is ignored"),
        Code("HDR_0004", ERROR, "an unknown column looks like a misspelt known column"),
        Code("LIN_0001", ERROR, "the line has fewer fields than the header"),
        Code("LIN_0002", ERROR, "the line has more fields than the header"),
        Code("LIN_0003", ERROR, "a quoted field is not closed on its line"),
        Code("LIN_0004", ERROR, "the line is longer than 65,536 bytes"),
        Code("MTR_0001", ERROR, "the meter column is missing or empty"),
        Code("MTR_0002", ERROR, "the meter id is not a UUID"),
        Code("MTR_0003", ERROR, "no meter with this id in your account"),
        Code("OWN_0001", ERROR, "the meter is utility-authorized; only partner-created meters take uploads"),
        Code("OWN_0002", ERROR, "the meter is not in your account at upload time"),
        Code("OWN_0003", ERROR, "the meter was not in your account for this interval"),
        Code("STM_0001", ERROR, "the interval start column is missing or empty"),
        Code("STM_0002", ERROR, "the interval start is not an ISO-8601 time with Z or an offset"),
        Code("STM_0003", ERROR, "the interval start is not on a 15-minute boundary, or is in the future"),
        Code("ETM_0001", ERROR, "the interval end column is missing or empty"),
        Code("ETM_0002", ERROR, "the interval end is not an ISO-8601 time with Z or an offset"),
        Code("ETM_0003", ERROR, "the interval end is not on a 15-minute boundary, or is in the future"),
        Code("DTR_0003", ERROR, "end minus start is not exactly 15 minutes"),
        Code("CON_0002", ERROR, "energy consumed is not a number"),
        Code("CON_0003", ERROR, "energy consumed is negative"),
        Code("GEN_0002", ERROR, "energy generated is not a number"),
        Code("GEN_0003", ERROR, "energy generated is negative"),
        Code("NET_0002", ERROR, "energy net is not a number"),
        Code(
            "NRG_0001", ERROR, "no valid set of energy values (net alone, consumed + generated, or all three)"
        ),
        Code("NRG_0003", ERROR, "consumed minus generated does not equal net"),
        Code("FNL_0002", ERROR, "final is not true or false"),
        Code("REG_0002", ERROR, "region is not made of letters"),
        Code("REG_0003", ERROR, "region is not two upper-case letters"),
        Code("DUP_0001", ERROR, "the same meter and interval appear again with different values"),
        Code(
            "DUP_0002", WARNING, "the same meter and interval appear again with identical values (kept once)"
        ),
    ]
}


@dataclass(frozen=True)
class Finding:
    """One error or warning: line is the 1-based physical line (header = 1, 0 = whole file)."""

    line: int
    column: str
    code: str
    message: str

    @property
    def severity(self) -> str:
        return CATALOGUE[self.code].severity


class FileLevelError(Exception):
    """A fault that stops reading the file (empty, not text, corrupt archive): one finding, nothing more to check."""

    def __init__(self, finding: Finding):
        super().__init__(finding.message)
        self.finding = finding
