"""The interval-data rules: one pandera check per error code, over raw fields and their parsed forms.

`prepare` parses every field once (vectorised) into underscore columns; the pandera DataFrameModel below is
the rule engine: each check says, per row, whether one rule holds. A check never fires for a value that an
earlier rule already rejected (e.g. CON_0003 only looks at numbers that parsed), so each fault is reported
once, under its most specific code.
"""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl

from leap_orchestration.intake.header import (
    CONSUMED,
    END,
    FINAL,
    GENERATED,
    KNOWN_COLUMNS,
    METER,
    NET,
    REGION,
    START,
)
from leap_orchestration.intake.meters import PartnerMeters

UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Plain decimal numbers, optionally in scientific notation (1e3). Not NaN, inf, hex or thousands separators.
NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$"
# ISO-8601 date-time with seconds, 'T', and Z or an explicit offset; fractions allowed.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
FAST_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIME_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
INTERVAL = dt.timedelta(minutes=15)
# consumed - generated may differ from net by rounding of each value: 1 Wh is tolerated.
BALANCE_TOLERANCE_KWH = 0.001


def _time(raw: pl.Series) -> pl.Series:
    """Parse ISO-8601 times to UTC; null where the text is not one."""
    shaped = raw.str.contains(TIME_RE)
    # The common shape (whole seconds, 'Z') has a fast fixed-format parser; the general one (offsets,
    # fractions) costs 5x more, so it only runs when some value needs it.
    parsed = raw.str.to_datetime(FAST_TIME_FORMAT, strict=False, time_zone="UTC", time_unit="us")
    if (shaped & parsed.is_null()).any():
        general = raw.str.to_datetime(TIME_FORMAT, strict=False, time_zone="UTC", time_unit="us")
        parsed = parsed.fill_null(general)
    return pl.select(pl.when(shaped).then(parsed)).to_series().alias(raw.name)


def _number(column: str) -> pl.Expr:
    raw = pl.col(column)
    value = raw.cast(pl.Float64, strict=False)
    return pl.when(raw.str.contains(NUMBER_RE) & value.is_finite()).then(value)  # 1e999 overflows to inf


def prepare(frame: pl.DataFrame, meters: PartnerMeters, now: dt.datetime) -> pl.DataFrame:
    """Add the parsed (underscore) columns the checks read; missing optional columns become empty."""
    missing = [c for c in KNOWN_COLUMNS if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None, pl.String).alias(c) for c in missing)
    meter = pl.col(METER)
    frame = frame.with_columns(
        pl.lit(now, pl.Datetime("us", "UTC")).alias("_now"),
        pl.when(meter.str.contains(UUID_RE)).then(meter.str.to_lowercase()).alias("_meter"),
        _time(frame[START]).alias("_start"),
        _time(frame[END]).alias("_end"),
        _number(NET).alias("_net"),
        _number(CONSUMED).alias("_consumed"),
        _number(GENERATED).alias("_generated"),
        pl.col(FINAL)
        .str.to_lowercase()
        .replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
        .alias("_final"),
    )
    frame = frame.with_columns(
        pl.col("_meter").is_in(list(meters.known)).alias("_known"),
        pl.col("_meter").is_in(list(meters.utility)).alias("_utility"),
        pl.col("_meter").is_in(list(meters.owned_now)).alias("_owned_now"),
    )
    return frame.with_columns(_owned_for_interval(frame, meters))


def _owned_for_interval(frame: pl.DataFrame, meters: PartnerMeters) -> pl.Series:
    """True where one of the partner's ownership windows covers [start, end) of the row."""
    rows = frame.filter(pl.col("_known")).select("line", "_meter", "_start", "_end")
    covered = (
        rows.drop_nulls()
        .join(meters.windows, left_on="_meter", right_on="meter_id", how="inner")
        .filter(
            (pl.col("valid_from") <= pl.col("_start"))
            & (pl.col("valid_to").is_null() | (pl.col("_end") <= pl.col("valid_to")))
        )
        .select("line")
        .unique()
    )
    return frame["line"].is_in(covered["line"].implode()).alias("_owned_interval")


def _ok(expr: pl.Expr):
    return lambda cls, data: data.lazyframe.select(expr)


def _present(column: str) -> pl.Expr:
    return pl.col(column).is_not_null()


_m, _s, _e = pl.col("_meter"), pl.col("_start"), pl.col("_end")
_now = pl.col("_now")


def _aligned(ts: pl.Expr) -> pl.Expr:
    return (ts.dt.minute() % 15 == 0) & (ts.dt.second() == 0) & (ts.dt.nanosecond() == 0)


class IntervalDataModel(pa.DataFrameModel):
    """Interval-data CSV v1: one row per meter per 15-minute interval (docs/error-codes.md)."""

    line: int = pa.Field()
    meter_uuid: str = pa.Field(nullable=True)
    interval_start_time_utc: str = pa.Field(nullable=True)
    interval_end_time_utc: str = pa.Field(nullable=True)
    energy_net_kwh: str = pa.Field(nullable=True)
    energy_consumed_kwh: str = pa.Field(nullable=True)
    energy_generated_kwh: str = pa.Field(nullable=True)
    final: str = pa.Field(nullable=True)
    region: str = pa.Field(nullable=True)

    class Config:
        strict = False  # parsed underscore columns and unknown (ignored) columns ride along

    mtr_0001 = pa.check(METER, name="MTR_0001")(_ok(_present(METER)))
    mtr_0002 = pa.check(METER, name="MTR_0002")(_ok(~_present(METER) | _m.is_not_null()))
    mtr_0003 = pa.check(METER, name="MTR_0003")(_ok(_m.is_null() | pl.col("_known")))
    own_0001 = pa.check(METER, name="OWN_0001")(_ok(~pl.col("_known") | ~pl.col("_utility")))
    own_0002 = pa.check(METER, name="OWN_0002")(
        _ok(~pl.col("_known") | pl.col("_utility") | pl.col("_owned_now"))
    )
    own_0003 = pa.check(METER, name="OWN_0003")(
        _ok(~pl.col("_known") | pl.col("_utility") | _s.is_null() | _e.is_null() | pl.col("_owned_interval"))
    )

    stm_0001 = pa.check(START, name="STM_0001")(_ok(_present(START)))
    stm_0002 = pa.check(START, name="STM_0002")(_ok(~_present(START) | _s.is_not_null()))
    stm_0003 = pa.check(START, name="STM_0003")(_ok(_s.is_null() | (_aligned(_s) & (_s + INTERVAL <= _now))))
    etm_0001 = pa.check(END, name="ETM_0001")(_ok(_present(END)))
    etm_0002 = pa.check(END, name="ETM_0002")(_ok(~_present(END) | _e.is_not_null()))
    etm_0003 = pa.check(END, name="ETM_0003")(_ok(_e.is_null() | (_aligned(_e) & (_e <= _now))))
    dtr_0003 = pa.check(END, name="DTR_0003")(_ok(_s.is_null() | _e.is_null() | (_e - _s == INTERVAL)))

    con_0002 = pa.check(CONSUMED, name="CON_0002")(
        _ok(~_present(CONSUMED) | pl.col("_consumed").is_not_null())
    )
    con_0003 = pa.check(CONSUMED, name="CON_0003")(
        _ok(pl.col("_consumed").is_null() | (pl.col("_consumed") >= 0))
    )
    gen_0002 = pa.check(GENERATED, name="GEN_0002")(
        _ok(~_present(GENERATED) | pl.col("_generated").is_not_null())
    )
    gen_0003 = pa.check(GENERATED, name="GEN_0003")(
        _ok(pl.col("_generated").is_null() | (pl.col("_generated") >= 0))
    )
    net_0002 = pa.check(NET, name="NET_0002")(_ok(~_present(NET) | pl.col("_net").is_not_null()))

    fnl_0002 = pa.check(FINAL, name="FNL_0002")(_ok(~_present(FINAL) | pl.col("_final").is_not_null()))
    reg_0002 = pa.check(REGION, name="REG_0002")(
        _ok(~_present(REGION) | pl.col(REGION).str.contains(r"^[A-Za-z]+$"))
    )
    reg_0003 = pa.check(REGION, name="REG_0003")(
        _ok(
            ~pl.col(REGION).str.contains(r"^[A-Za-z]+$").fill_null(False)
            | pl.col(REGION).str.contains(r"^[A-Z]{2}$")
        )
    )

    @pa.dataframe_check(name="NRG_0001")
    def nrg_0001(cls, data: pa.PolarsData):
        n, c, g = _present(NET), _present(CONSUMED), _present(GENERATED)
        return data.lazyframe.select((n & ~c & ~g) | (~n & c & g) | (n & c & g))

    @pa.dataframe_check(name="NRG_0003")
    def nrg_0003(cls, data: pa.PolarsData):
        n, c, g = pl.col("_net"), pl.col("_consumed"), pl.col("_generated")
        unbalanced = (c - g - n).abs() > BALANCE_TOLERANCE_KWH
        return data.lazyframe.select(~unbalanced.fill_null(False))
