"""What the Dagster UI shows for an event: baseline against actual (all meters, and the best, median and worst
meter, named), the totals, and the best and worst performers, as one Markdown document with an embedded PNG
chart: 900×560 px, kW from zero, the meters' local time with the date (UTC beside it), the whole last interval
drawn, and no baseline line for programs without a baseline.

Dagster renders Markdown metadata, including `data:` images; matplotlib draws headless (Agg) in the run worker.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from zoneinfo import ZoneInfo

import duckdb
import matplotlib

from leap_orchestration.settlement.performance import PROGRAM_EVENTS

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402  (after choosing the headless backend)
import matplotlib.pyplot as plt  # noqa: E402

PERFORMERS = 3
INTERVAL = dt.timedelta(minutes=15)


def event_report(con: duckdb.DuckDBPyConnection, event_id: str) -> str:
    """Markdown for one settled event (empty string if it has no rows yet)."""
    totals = con.execute(
        f"""SELECT program_id, start_utc, end_utc, meters_enrolled, meters_with_numbers, meters_ok,
                                   baseline_kwh, actual_kwh, reduction_kwh, avg_reduction_kw
                            FROM ({PROGRAM_EVENTS}) WHERE event_id = ?""",
        [event_id],
    ).fetchall()
    if not totals:
        return ""
    program, start, end, enrolled, numbered, ok, base, actual, reduction, kw = totals[0]
    statuses = con.execute(
        """SELECT status, count(*) FROM event_performance WHERE event_id = ? GROUP BY ALL ORDER BY 2 DESC""",
        [event_id],
    ).fetchall()
    ranked = con.execute(
        """SELECT meter_id, reduction_kwh, avg_reduction_kw, status FROM event_performance
                            WHERE event_id = ? AND reduction_kwh IS NOT NULL ORDER BY avg_reduction_kw DESC, meter_id""",
        [event_id],
    ).fetchall()
    lines = [
        f"**{event_id}** ({program}), {start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC",
        "",
        "| meters enrolled | with numbers | OK | baseline kWh | actual kWh | reduction kWh | average kW |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {enrolled} | {numbered} | {ok} | {_num(base)} | {_num(actual)} | {_num(reduction)} | {_num(kw)} |",
        "",
        "Statuses: " + ", ".join(f"{s} {n}" for s, n in statuses),
    ]
    if ranked:
        lines += ["", "| | meter | reduction kWh | average kW | status |", "|---|---|---:|---:|---|"]
        best = ranked[:PERFORMERS]
        worst = [r for r in ranked[::-1][:PERFORMERS] if r not in best]
        lines += [
            f"| {label} | `{m}` | {_num(r)} | {_num(k)} | {s} |"
            for label, rows in (("best", best), ("worst", worst))
            for m, r, k, s in rows
        ]
    picks = [ranked[0], ranked[len(ranked) // 2], ranked[-1]] if ranked else []  # best, median, worst
    chart = _chart(con, event_id, list(dict.fromkeys(m for m, *_ in picks)))
    if chart:
        lines += ["", f"![baseline against actual](data:image/png;base64,{chart})"]
    return "\n".join(lines)


def _num(value) -> str:
    return "–" if value is None else f"{value:,.2f}"


def _chart(con, event_id: str, sample: list[str]) -> str | None:
    """Aggregate kW per interval (baseline, actual) over every meter with numbers, and the sample meters (the
    best, the median and the worst performer), in the meters' local time; sized to be read on the page."""
    rows = con.execute(
        """SELECT interval_start_utc, sum(adjusted_baseline_kwh) * 4, sum(actual_kwh) * 4
                          FROM baselines WHERE event_id = ? GROUP BY 1 ORDER BY 1""",
        [event_id],
    ).fetchall()
    if not rows:
        return None
    method, zone, meters = con.execute(
        """SELECT any_value(f.method), mode(m.timezone), count(f.reduction_kwh) FROM event_performance f
           JOIN meters m USING (meter_id) WHERE f.event_id = ?""",
        [event_id],
    ).fetchall()[0]
    tz = ZoneInfo(zone) if zone else dt.UTC
    with_baseline = method != "no_baseline"  # a flat zero line says nothing: batteries are judged on output
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.2), squeeze=False)
    flat = [ax for row in axes for ax in row]
    _panel(flat[0], rows, f"aggregate: {meters} meters", tz, with_baseline)
    for ax, (label, meter) in zip(
        flat[1:], zip(("best", "median", "worst"), sample, strict=False), strict=False
    ):
        meter_rows = con.execute(
            """SELECT interval_start_utc, adjusted_baseline_kwh * 4, actual_kwh * 4 FROM baselines
                                    WHERE event_id = ? AND meter_id = ? ORDER BY 1""",
            [event_id, meter],
        ).fetchall()
        _panel(ax, meter_rows, f"{label}: {meter}", tz, with_baseline)
    for ax in flat[1 + len(sample) :]:
        ax.axis("off")
    first, last = rows[0][0], rows[-1][0] + INTERVAL
    fig.suptitle(
        f"{event_id}: {first.astimezone(tz):%Y-%m-%d %H:%M}–{last.astimezone(tz):%H:%M %Z} "
        f"({first.astimezone(dt.UTC):%H:%M}–{last.astimezone(dt.UTC):%H:%M} UTC)",
        fontsize=11,
    )
    flat[0].legend(fontsize=9, loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _panel(ax, rows, title: str, tz, with_baseline: bool) -> None:
    # one more point at the last interval's end, so the step line draws the whole last interval
    times = [t for t, _, _ in rows] + [rows[-1][0] + INTERVAL]
    baseline = [b for _, b, _ in rows]
    actual = [a if a is not None else float("nan") for _, _, a in rows]
    if with_baseline:
        ax.step(times, baseline + baseline[-1:], where="post", label="baseline kW", color="C0")
    ax.step(times, actual + actual[-1:], where="post", label="actual kW", color="C1")
    values = [v for v in baseline + actual if v is not None and v == v]
    ax.set_ylim(bottom=min(0.0, *values) if values else 0.0)  # from zero: the reduction is the gap to read
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("kW", fontsize=9)
    ax.set_xlabel(f"local time ({tz})", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax.grid(alpha=0.3)
