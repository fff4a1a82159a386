"""The comparison point: the same rules written the straightforward way, pandera on pandas, whole file at once.

This is what a first version typically looks like: read every field as text with pandas, then one pandera
DataFrameSchema whose checks parse what they need (vectorised pandas, no Python loops over rows), validated
lazily so every failing cell is collected. Used only by bench/intake_benchmark.py.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$"
TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"


def _time(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s.where(s.str.match(TIME, na=False)), utc=True, errors="coerce", format="ISO8601")


def _number(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.where(s.str.match(NUMBER, na=False)), errors="coerce")


def _aligned(t: pd.Series) -> pd.Series:
    return (t.dt.minute % 15 == 0) & (t.dt.second == 0) & (t.dt.microsecond == 0)


def build_schema(ownership: pd.DataFrame, partner: str, now: pd.Timestamp) -> pa.DataFrameSchema:
    mine = ownership[ownership.partner_id == partner]
    known = set(mine.meter_id)
    utility = set(mine[mine.source == "utility"].meter_id)
    owned_now = set(mine[(mine.valid_from <= now) & (mine.valid_to.isna() | (mine.valid_to > now))].meter_id)

    def owned_for_interval(df: pd.DataFrame) -> pd.Series:
        rows = pd.DataFrame(
            {
                "meter_id": df.meter_uuid.str.lower(),
                "s": _time(df.interval_start_time_utc),
                "e": _time(df.interval_end_time_utc),
                "row": df.index,
            }
        )
        joined = rows.merge(mine, on="meter_id")
        ok = joined[
            (joined.valid_from <= joined.s) & (joined.valid_to.isna() | (joined.e <= joined.valid_to))
        ]
        unchecked = ~rows.meter_id.isin(known) | rows.meter_id.isin(utility) | rows.s.isna() | rows.e.isna()
        return pd.Series(df.index.isin(ok.row) | unchecked.to_numpy(), index=df.index)

    def balanced(df: pd.DataFrame) -> pd.Series:
        n, c, g = (
            _number(df.energy_net_kwh),
            _number(df.energy_consumed_kwh),
            _number(df.energy_generated_kwh),
        )
        return ~((c - g - n).abs() > 0.001)

    def energy_set(df: pd.DataFrame) -> pd.Series:
        n, c, g = df.energy_net_kwh.notna(), df.energy_consumed_kwh.notna(), df.energy_generated_kwh.notna()
        return (n & ~c & ~g) | (~n & c & g) | (n & c & g)

    def not_duplicated(df: pd.DataFrame) -> pd.Series:
        key = pd.DataFrame({"m": df.meter_uuid.str.lower(), "s": _time(df.interval_start_time_utc)})
        return ~key.duplicated(keep="first") | key.isna().any(axis=1)

    def number_column(negative_ok: bool) -> pa.Column:
        checks = [pa.Check(lambda s: s.isna() | _number(s).notna(), element_wise=False)]
        if not negative_ok:
            checks.append(pa.Check(lambda s: ~(_number(s) < 0)))
        return pa.Column(str, checks, nullable=True)

    def time_column(end: bool) -> pa.Column:
        limit = now if end else now - pd.Timedelta(minutes=15)
        return pa.Column(
            str,
            [
                pa.Check(lambda s: s.notna()),
                pa.Check(lambda s: s.isna() | _time(s).notna()),
                pa.Check(lambda s: _time(s).isna() | (_aligned(_time(s)) & (_time(s) <= limit))),
            ],
            nullable=True,
        )

    return pa.DataFrameSchema(
        {
            "meter_uuid": pa.Column(
                str,
                [
                    pa.Check(lambda s: s.notna()),
                    pa.Check(lambda s: s.isna() | s.str.match(UUID, na=False)),
                    pa.Check(lambda s: ~s.str.match(UUID, na=False) | s.str.lower().isin(known)),
                    pa.Check(lambda s: ~s.str.lower().isin(known) | ~s.str.lower().isin(utility)),
                    pa.Check(
                        lambda s: (
                            ~s.str.lower().isin(known)
                            | s.str.lower().isin(utility)
                            | s.str.lower().isin(owned_now)
                        )
                    ),
                ],
                nullable=True,
            ),
            "interval_start_time_utc": time_column(end=False),
            "interval_end_time_utc": time_column(end=True),
            "energy_net_kwh": number_column(negative_ok=True),
            "energy_consumed_kwh": number_column(negative_ok=False),
            "energy_generated_kwh": number_column(negative_ok=False),
            "final": pa.Column(
                str, pa.Check(lambda s: s.isna() | s.str.lower().isin(["true", "false"])), nullable=True
            ),
            "region": pa.Column(
                str,
                [
                    pa.Check(lambda s: s.isna() | s.str.match(r"^[A-Za-z]+$", na=False)),
                    pa.Check(
                        lambda s: (
                            ~s.str.match(r"^[A-Za-z]+$", na=False) | s.str.match(r"^[A-Z]{2}$", na=False)
                        )
                    ),
                ],
                nullable=True,
            ),
        },
        checks=[
            pa.Check(
                lambda df: (
                    (_time(df.interval_end_time_utc) - _time(df.interval_start_time_utc)).isna()
                    | (
                        _time(df.interval_end_time_utc) - _time(df.interval_start_time_utc)
                        == pd.Timedelta(minutes=15)
                    )
                )
            ),
            pa.Check(energy_set),
            pa.Check(balanced),
            pa.Check(owned_for_interval),
            pa.Check(not_duplicated),
        ],
    )


def validate_with_pandas(path, ownership: pd.DataFrame, partner: str) -> int:
    """Number of failure cases (every failing cell) found in the file."""
    # on_bad_lines: rows with the wrong field count are reported by pandas, not by pandera
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], on_bad_lines="skip")
    schema = build_schema(ownership, partner, pd.Timestamp.now(tz="UTC"))
    try:
        schema.validate(df, lazy=True)
        return 0
    except pa.errors.SchemaErrors as exc:
        return len(exc.failure_cases)
