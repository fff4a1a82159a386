"""The event chart the UI shows inline: under the UI's 1,000-character limit for any event length, drawn from
zero (or below it when a value is negative), the baseline left out for no-baseline programs, the times in the
meters' local time."""

import base64
import datetime as dt
import io
import re

import pytest
from PIL import Image
from test_settlement import EVENT_DAY, add_event, add_meter, add_program, con, load, local  # noqa: F401

from leap_orchestration.settlement import charts
from leap_orchestration.settlement.settle import settle

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _image(markdown: str) -> Image.Image:
    data = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown).group(1)
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def _colours(image: Image.Image) -> set:
    return {colour for _, colour in image.getcolors(maxcolors=256)}


BLUE, ORANGE = (31, 119, 180), (255, 127, 14)


def _settled(con, preset: str, hours: int, value) -> str:  # noqa: F811
    add_program(con, "p", preset=preset, channel="generated" if preset == "no_baseline" else "net")
    add_meter(con, "meter-a", "p")
    add_meter(con, "meter-b", "p")
    for meter in ("meter-a", "meter-b"):
        load(
            con,
            meter,
            dt.date(2025, 6, 1),
            EVENT_DAY,
            value,
            generated=value if preset == "no_baseline" else None,
        )
    add_event(con, "e1", "p", local(EVENT_DAY, 8), local(EVENT_DAY, 8 + hours))
    settle(con, NOW)
    return charts.inline_chart(con, "e1")


@pytest.mark.parametrize("hours", [1, 4, 12])
def test_every_event_length_fits_inline_with_its_scale_and_local_times(con, hours):  # noqa: F811
    markdown = _settled(con, "caiso_10in10", hours, lambda day, lt: 1.0 if day != EVENT_DAY else 0.4)
    assert len(markdown) < charts.INLINE_LIMIT
    end = f"{8 + hours:02d}:00" if hours < 16 else ""
    assert f"2025-08-20 08:00–{end} PDT" in markdown and "sum of 2 meters" in markdown
    # the adjusted baseline is 6.4 kW (2 meters x 1 kWh x 4, adjusted down by the 20 % cap), the actual
    # 3.2 kW: a scale from zero with room above the baseline, in round steps
    low, high, step = map(
        float, re.search(r"kW from (\S+) to (\S+) \(grid every (\S+) kW", markdown).groups()
    )
    assert low == 0 and 6.4 < high <= 10 and high % step == 0
    image = _image(markdown)
    assert image.width >= 240 and {BLUE, ORANGE} <= _colours(image)


def test_no_baseline_line_for_a_no_baseline_program(con):  # noqa: F811
    markdown = _settled(con, "no_baseline", 3, lambda day, lt: 0.5)
    assert "orange actual" in markdown and "baseline" not in markdown.split(")")[-1]
    colours = _colours(_image(markdown))
    assert ORANGE in colours and BLUE not in colours


def test_negative_values_extend_the_scale_below_zero(con):  # noqa: F811
    markdown = _settled(con, "caiso_10in10", 2, lambda day, lt: 1.0 if day != EVENT_DAY else -0.5)
    low = float(re.search(r"kW from (-?[\d.]+) to", markdown).group(1))
    assert low <= -4  # the actual is -4 kW (2 meters x -0.5 kWh x 4)
    assert "zero darker" in markdown


def test_an_event_without_rows_has_no_chart(con):  # noqa: F811
    assert charts.inline_chart(con, "nothing") == ""


def test_an_event_without_any_value_to_draw_still_has_a_chart(con):  # noqa: F811
    _settled(con, "no_baseline", 2, lambda day, lt: 0.5)
    con.execute("UPDATE baselines SET actual_kwh = NULL")  # a battery that sent nothing for the event
    markdown = charts.inline_chart(con, "e1")
    assert len(markdown) < charts.INLINE_LIMIT and "kW from 0 to" in markdown
    assert ORANGE not in _colours(_image(markdown))
