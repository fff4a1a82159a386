"""What the Dagster UI shows for an event: baseline against actual (all meters, and a few of them), the totals,
and the best and worst performers, as one Markdown document with an embedded PNG chart.

Dagster renders Markdown metadata, including `data:` images; matplotlib draws headless (Agg) in the run worker.
"""

from __future__ import annotations

import base64
import io

import duckdb
import matplotlib

from leap_orchestration.settlement.performance import PROGRAM_EVENTS

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402  (after choosing the headless backend)
import matplotlib.pyplot as plt  # noqa: E402

PERFORMERS = 3


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
    best, the median and the worst performer)."""
    rows = con.execute(
        """SELECT interval_start_utc, sum(adjusted_baseline_kwh) * 4, sum(actual_kwh) * 4
                          FROM baselines WHERE event_id = ? GROUP BY 1 ORDER BY 1""",
        [event_id],
    ).fetchall()
    if not rows:
        return None
    panels = 1 + len(sample)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 2.6), squeeze=False)
    _panel(axes[0][0], rows, "all meters")
    for ax, meter in zip(axes[0][1:], sample, strict=True):
        meter_rows = con.execute(
            """SELECT interval_start_utc, adjusted_baseline_kwh * 4, actual_kwh * 4 FROM baselines
                                    WHERE event_id = ? AND meter_id = ? ORDER BY 1""",
            [event_id, meter],
        ).fetchall()
        _panel(ax, meter_rows, meter[:8])
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _panel(ax, rows, title: str) -> None:
    times = [t for t, _, _ in rows]
    ax.step(times, [b for _, b, _ in rows], where="post", label="baseline kW")
    ax.step(
        times, [a if a is not None else float("nan") for _, _, a in rows], where="post", label="actual kW"
    )
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("UTC", fontsize=6)
    ax.tick_params(labelsize=6)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
