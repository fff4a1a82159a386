"""What the rules know about meters, seen from the uploading partner (ownership over time)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class PartnerMeters:
    partner_id: str
    known: frozenset[str]  # meters this partner owns or ever owned (others are reported as unknown)
    utility: frozenset[str]  # of those, the utility-authorized ones
    owned_now: frozenset[str]  # owned at upload time
    windows: pl.DataFrame  # this partner's ownership windows: meter_id, valid_from, valid_to

    @classmethod
    def from_ownership(cls, ownership: pl.DataFrame, partner_id: str, at: dt.datetime) -> PartnerMeters:
        mine = ownership.filter(pl.col("partner_id") == partner_id)
        now = mine.filter(
            (pl.col("valid_from") <= at) & (pl.col("valid_to").is_null() | (pl.col("valid_to") > at))
        )
        return cls(
            partner_id=partner_id,
            known=frozenset(mine["meter_id"].to_list()),
            utility=frozenset(mine.filter(pl.col("source") == "utility")["meter_id"].to_list()),
            owned_now=frozenset(now["meter_id"].to_list()),
            windows=mine.select("meter_id", "valid_from", "valid_to"),
        )
