"""Meter ownership over time as one frame: what the warehouse holds and the XML files say, in the same shape, for
the rules that check who may upload for which meter (intake/meters.py) and for what the warehouse returns."""

from __future__ import annotations

import polars as pl

OWNERSHIP_SCHEMA = {
    "meter_id": pl.String,
    "partner_id": pl.String,
    "source": pl.String,  # 'partner' (created by a partner) or 'utility' (utility-authorized)
    "valid_from": pl.Datetime("us", "UTC"),
    "valid_to": pl.Datetime("us", "UTC"),  # null = open-ended
}


def ownership_frame(rows: list[tuple]) -> pl.DataFrame:
    """(meter_id, partner_id, source, valid_from, valid_to) tuples as a frame."""
    return pl.DataFrame(rows, schema=OWNERSHIP_SCHEMA, orient="row")
