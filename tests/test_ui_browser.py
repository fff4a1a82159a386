"""The operator's questions, answered from the Dagster UI in a real browser (Debian's chromium, Playwright).

The demo is started as the README says (`leap-orchestration demo`, on free ports of 127.0.0.1, in a temporary
LEAP_HOME); a partner uploads a bad file over SFTP; then the browser looks at what a data engineer would:
the failed upload's run and its check with the error codes, every event's table and chart, the checks and
the freshness of the assets. The SFTP latency benchmark runs once against the same demo, under load.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import paramiko
import pytest
from conftest import csv_text, good_row, partner_meter
from gcs_support import free_port

# one demo for all of them: on one worker (scripts/test runs with --dist loadgroup), not one demo per worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_demo")]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
PARTNER = "sunrise-energy"


class Demo:
    def __init__(self, home: Path, ui_port: int, sftp_port: int):
        self.home, self.ui_port, self.sftp_port = home, ui_port, sftp_port
        self.url = f"http://127.0.0.1:{ui_port}"
        self.output: list[str] = []

    def sftp(self) -> paramiko.SFTPClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            "127.0.0.1",
            port=self.sftp_port,
            username=PARTNER,
            password=(self.home / "demo-api-key.txt").read_text().strip(),
            allow_agent=False,
            look_for_keys=False,
        )
        return client.open_sftp()

    def warehouse(self, sql: str, params=None) -> list[tuple]:
        """A read of the demo's warehouse (retried while a run holds DuckDB's write lock)."""
        for _ in range(120):
            try:
                with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
                    return con.execute(sql, params or []).fetchall()
            except duckdb.IOException:
                time.sleep(0.5)
        raise AssertionError("the warehouse stayed locked for a minute")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-demo") / ".leap"
    started = Demo(home, free_port(), free_port())
    env = {**os.environ, "LEAP_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    for name in ("DAGSTER_HOME", "LEAP_CONFIG"):
        env.pop(name, None)
    process = subprocess.Popen(
        [
            str(BIN / "leap-orchestration"),
            "demo",
            "--ui-port",
            str(started.ui_port),
            "--sftp-port",
            str(started.sftp_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: Ctrl-C (SIGINT) to the group stops everything
    )
    reader = threading.Thread(target=lambda: started.output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 420
        while not any(line.startswith("Ready.") for line in started.output):
            assert process.poll() is None, "".join(started.output)
            assert time.monotonic() < deadline, "demo not ready in 7 min:\n" + "".join(started.output)
            time.sleep(1)
        yield started
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    page.screenshot(path=str(tmp_path / "last.png"), full_page=True)  # kept by pytest for a failure's autopsy
    context.close()


def _wait_for_result(ftp: paramiko.SFTPClient, name: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in ("accepted", "failed"):
            try:
                ftp.stat(f"interval-data/{folder}/{name}/{name}")
                return folder
            except OSError:
                pass
        time.sleep(0.5)
    raise AssertionError(f"{name}: no result in {timeout} s")


def _text(page) -> str:
    return page.inner_text("body")


def test_a_failed_upload_is_visible_with_its_codes(demo, page):
    meter = partner_meter(PARTNER).meter_id
    bad = csv_text(
        good_row(meter),
        good_row(meter, start="2024-04-01T11:15:00Z", end="2024-04-01T11:30:00Z", consumed="lots"),
        good_row("no-such-meter", start="2024-04-01T11:30:00Z", end="2024-04-01T11:45:00Z"),
    )
    ftp = demo.sftp()
    name = "ui-test-bad.csv"
    with ftp.open(f"interval-data/{name}", "wb") as fh:
        fh.write(bad)
    assert _wait_for_result(ftp, name) == "failed"
    (errors,) = [f for f in ftp.listdir(f"interval-data/failed/{name}") if f.endswith(".errors.csv")]
    with ftp.open(f"interval-data/failed/{name}/{errors}") as fh:
        codes = set(re.findall(r"\b[A-Z]{3}_\d{4}\b", fh.read().decode()))
    assert codes

    # the Runs list filtered on the outcome tag shows the run, and the run is not plain green
    page.goto(f"{demo.url}/runs?q%5B0%5D=tag%3Aleap%2Foutcome%3Dfailed-uploads")
    page.get_by_text("process_uploads").first.wait_for()
    # the asset's checks: uploads_accepted is a warning, with the codes and the file named
    page.goto(f"{demo.url}/assets/uploads?view=checks")
    page.get_by_text("uploads_accepted").first.click()
    page.get_by_text(name).first.wait_for()
    text = _text(page)
    assert all(code in text for code in codes), (codes, text[:3000])


def test_every_event_shows_its_chart_and_every_enrolled_meter(demo, page):
    events = demo.warehouse("SELECT event_id, count(*) FROM event_performance GROUP BY 1 ORDER BY 1")
    assert len(events) == 8
    page.goto(f"{demo.url}/assets/event_performance")
    page.get_by_text("chart details").first.wait_for()
    page.wait_for_load_state("networkidle")
    # the inline charts: one image per event, loaded (a broken image has natural width 0)
    widths = page.eval_on_selector_all(
        "img[src^='data:image/png']", "images => images.map(i => [i.alt, i.complete && i.naturalWidth])"
    )
    loaded = {alt for alt, width in widths if width}
    assert {event for event, _ in events} <= loaded, widths
    # every enrolled meter of an event is in its table
    event, enrolled = events[0]
    meters = {
        m for (m,) in demo.warehouse("SELECT meter_id FROM event_performance WHERE event_id = ?", [event])
    }
    assert len(meters) == enrolled
    text = _text(page)
    assert f"event {event}" in text
    assert all(meter in text for meter in meters), sorted(m for m in meters if m not in text)


def test_the_demo_partner_finds_its_statements_and_the_data_it_owes(demo, page):
    # over SFTP, right after the demo started: statements of its events, and its deliberate gap named
    ftp = demo.sftp()
    assert "performance" in ftp.listdir("/")
    with ftp.open("performance/index.csv") as fh:
        index = fh.read().decode()
    assert "event/caiso_dsgs/caiso_dsgs-2025-08-20" in index and "season/caiso_dsgs/summer-2025" in index
    with ftp.open("performance/missing-intervals.csv") as fh:
        owed = list(csv.DictReader(io.StringIO(fh.read().decode())))
    (gap,) = demo.warehouse(
        """SELECT meter_id FROM event_performance WHERE event_id = 'caiso_dsgs-2025-08-20'
           AND status = 'MISSING_ACTUALS'"""
    )
    assert [(r["meter_id"], r["events"], r["intervals"]) for r in owed] == [
        (gap[0], "caiso_dsgs-2025-08-20", "2")
    ]
    # in the UI: the statements asset names the partners and the data owed; each event explains its baselines
    page.goto(f"{demo.url}/assets/performance_statements")
    page.get_by_text("data_owed").first.wait_for()
    page.wait_for_load_state("networkidle")
    text = _text(page)
    assert gap[0] in text and PARTNER in text, text[:3000]
    page.goto(f"{demo.url}/assets/event_performance")
    page.get_by_text("baseline explanation caiso_dsgs-2025-08-20").first.wait_for()
    assert "not_used" in _text(page)


def test_the_healthy_demo_looks_green_and_fresh(demo, page):
    # settlement's checks: green, also after a run that had nothing new to materialize
    page.goto(f"{demo.url}/assets/event_performance?view=checks")
    page.get_by_text("event_performance_sufficiency").first.wait_for()
    page.wait_for_load_state("networkidle")
    text = _text(page)  # the list of checks: each name, then its latest state
    for check in ("event_performance_sufficiency", "event_performance_delivery"):
        assert re.search(rf"{check}\s+Succeeded", text), text[:2000]
    # freshness: settlement looked at the events within the hour (the daemon judges every 30 s)
    page.goto(f"{demo.url}/assets/baselines")
    page.get_by_text("Freshness policy").first.wait_for()
    # the freshness daemon judges every 30 s, but on a loaded machine (CI: two test workers) its first
    # evaluation of the demo's assets has taken over 2 minutes
    deadline = time.monotonic() + 360
    while (
        not re.search(r"Freshness policy[\s\S]{0,200}Passing", text := _text(page))
        and time.monotonic() < deadline
    ):
        time.sleep(5)
        page.reload()
        page.get_by_text("Freshness policy").first.wait_for()
    assert re.search(r"Freshness policy[\s\S]{0,200}Passing", text), text[:3000]


def test_latency_benchmark_under_load_runs(demo):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "sftp_latency.py"),
            "--home",
            str(demo.home),
            "--port",
            str(demo.sftp_port),
            "--ui-port",
            str(demo.ui_port),
            "--under-load",
            "--uploads",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "close -> result" in done.stdout and "settlement (forced): 1 runs" in done.stdout
