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
import math
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


# The Dagster UI renders a Markdown entry inline only under 1,000 characters (longer ones open in a dialog), so
# the chart shown inline is a small palette PNG drawn pixel-exact with Pillow (no anti-aliasing: few colours,
# long runs, a few hundred bytes), its scale and times written beside it in words.
INLINE_LIMIT = 1000
_WHITE, _BASELINE, _ACTUAL, _GAP, _GRID, _ZERO = range(6)
_PALETTE = [255, 255, 255, 31, 119, 180, 255, 127, 14, 214, 214, 214, 190, 190, 190, 90, 90, 90]


def inline_chart(con: duckdb.DuckDBPyConnection, event_id: str) -> str:
    """Markdown under INLINE_LIMIT characters: the event's aggregate baseline (blue) and actual (orange) kW per
    interval, the gap between them shaded, from zero, with hour lines in the meters' local time ('' if the
    event has no rows yet)."""
    rows = con.execute(
        """SELECT b.interval_start_utc, sum(b.adjusted_baseline_kwh) * 4, sum(b.actual_kwh) * 4,
                  any_value(b.method), count(DISTINCT b.meter_id),
                  (SELECT mode(m.timezone) FROM meters m JOIN baselines x USING (meter_id) WHERE x.event_id = $1)
           FROM baselines b WHERE b.event_id = $1 GROUP BY 1 ORDER BY 1""",
        [event_id],
    ).fetchall()
    if not rows:
        return ""
    tz = ZoneInfo(rows[0][5]) if rows[0][5] else dt.UTC
    with_baseline = rows[0][3] != "no_baseline"
    start, end = rows[0][0], rows[-1][0] + INTERVAL
    values = [v for _, b, a, *_ in rows for v in ((b if with_baseline else None), a) if v is not None]
    low, high = min([0.0, *values]), max([0.0, *values])
    step = _grid_step(high - low)
    # room beyond the extremes (8 % of the range, rounded out to the grid), so no line hides on an edge
    room = 0.08 * (high - low or 1.0)
    bottom = step * math.floor((low - room) / step) if low < 0 else 0.0
    top = step * math.ceil((high + room) / step)
    legend = (
        ("blue baseline, " if with_baseline else "")
        + "orange actual"
        + (", grey gap" if with_baseline else "")
    )
    caption = (
        f"kW from {bottom:g} to {top:g} (grid every {step:g} kW{', zero darker' if bottom else ''}), "
        f"sum of {rows[0][4]} meters: {legend}. "
        f"{start.astimezone(tz):%Y-%m-%d %H:%M}–{end.astimezone(tz):%H:%M %Z}, lines on the hour "
        f"({start.astimezone(dt.UTC):%H:%M}–{end.astimezone(dt.UTC):%H:%M} UTC)"
    )
    for width, height in ((480, 120), (400, 100), (320, 80), (240, 60)):
        png = _inline_png(rows, tz, with_baseline, (bottom, top, step), width, height)
        markdown = f"![{event_id}](data:image/png;base64,{base64.b64encode(png).decode()})\n\n{caption}"
        if len(markdown) < INLINE_LIMIT:
            return markdown
    return caption + " (too many intervals to draw inline: see the chart details)"


def _grid_step(peak: float) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving at most four grid lines up to `peak`."""
    if peak <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(peak / 4))
    return next(power * f for f in (1, 2, 2.5, 5, 10) if peak / (power * f) <= 4)


def _inline_png(rows, tz, with_baseline: bool, scale: tuple, width: int, height: int) -> bytes:
    from PIL import Image, ImageDraw  # Pillow: matplotlib's own image library

    image = Image.new("P", (width, height), _WHITE)
    image.putpalette(_PALETTE)
    draw = ImageDraw.Draw(image)
    first, span = rows[0][0], (rows[-1][0] + INTERVAL - rows[0][0]).total_seconds()

    def x(t) -> int:
        return round((t - first).total_seconds() / span * (width - 1))

    bottom, top, step = scale

    def y(kw: float) -> int:
        return height - 1 - round((kw - bottom) / (top - bottom) * (height - 1))

    level = bottom
    while level < top + step / 2:
        draw.line([(0, y(level)), (width - 1, y(level))], fill=_GRID)
        level += step
    hour = first.astimezone(tz).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    while hour < first + dt.timedelta(seconds=span):
        draw.line([(x(hour), 0), (x(hour), height - 1)], fill=_GRID)
        hour += dt.timedelta(hours=1)
    for t, baseline, actual, *_ in rows:
        left, right = x(t), x(t + INTERVAL)
        if with_baseline and baseline is not None and actual is not None:
            draw.rectangle([left, min(y(baseline), y(actual)), right, max(y(baseline), y(actual))], fill=_GAP)
    draw.line([(0, y(0)), (width - 1, y(0))], fill=_ZERO)  # over the shading: the sign of a value shows
    for column, colour in ((1, _BASELINE), (2, _ACTUAL)):
        if column == 1 and not with_baseline:
            continue
        steps: list[tuple[int, int]] = []  # one step line, broken where a value is missing
        for row in rows + [(None,) * 3]:
            if row[column] is None:
                if steps:
                    draw.line(steps, fill=colour, width=2)
                steps = []
                continue
            steps += [(x(row[0]), y(row[column])), (x(row[0] + INTERVAL), y(row[column]))]
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True, bits=4)
    return buffer.getvalue()
