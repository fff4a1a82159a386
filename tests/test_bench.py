"""Every script in bench/ runs at a tiny size, so that none can rot: it exits 0, prints its figures (which
mean nothing at that size) and leaves no scratch data behind. Each runs as a subprocess, as people run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


@pytest.fixture(scope="session")
def bytecode_folder(tmp_path_factory) -> Path:
    """Bytecode of the scripts' processes, shared by this session's xdist workers."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "bench-bytecode"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def run_bench(tmp_path, bytecode_folder):
    def run(script: str, *args: str) -> str:
        scratch = tmp_path / "tmp"  # the scripts' temporary folders go here (TMPDIR), so leftovers show
        scratch.mkdir()
        env = {**os.environ, "TMPDIR": str(scratch)}
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            # without bytecode every child process would compile pandas, pandera, polars... again (seconds
            # each); keep theirs for the session in a folder of its own, leaving the .venv as it is
            env["PYTHONPYCACHEPREFIX"] = str(bytecode_folder)
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, (
            f"{script} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-5000:]}"
        )
        left = sorted(p.name for p in scratch.iterdir())
        assert not left, f"{script} left scratch data behind: {left}"
        return proc.stdout

    return run


def lines(output: str, pattern: str) -> list[re.Match]:
    return [m for line in output.splitlines() if (m := re.search(pattern, line))]


@pytest.mark.slow
def test_intake_benchmark(run_bench):
    out = run_bench(
        "intake_benchmark.py",
        "--rows",
        "400",
        "--meters",
        "20",
        "--big-rows",
        "0",
        "--repeat",
        "1",
        "--files",
        "bad",
    )
    assert lines(out, r"^machine: .*duckdb .*polars .*pandera .*pandas "), out
    assert lines(out, r"^1% bad: .*, 400 rows$"), out
    assert lines(out, r"^\s+duckdb\s+.* s\s+peak\s+.* MB\s+\{'rows': 400\}"), out
    # 4 of the 400 rows are bad (one each of the first four kinds): the project fails the file
    assert lines(out, r"^\s+project\s+.*'rows': 400, 'errors': [1-9]\d*, 'status': 'FAILED'"), out
    assert lines(out, rf"^\s+project / duckdb bare load:\s+{NUMBER}x"), out
    pandas_ratio = lines(out, rf"^\s+pandas / project:\s+{NUMBER}x")
    note = lines(out, r"^note: pandas is not installed, so the pandas comparison is skipped")
    assert len(pandas_ratio) + len(note) == 1, out  # the ratio, or the note saying why it is missing
    if pandas_ratio:
        assert lines(out, r"^\s+pandas\s+.*\{'errors': [1-9]\d*\}"), out


@pytest.mark.slow
def test_baseline_benchmark(run_bench):
    out = run_bench("baseline_benchmark.py", "--meters", "30", "--repeat", "2")
    assert lines(out, r"^built [\d,]+ readings for 30 meters"), out
    assert lines(out, rf"^reference aggregate: {NUMBER} s \(median of 2: "), out
    assert lines(out, rf"^engine \(caiso_10in10\): {NUMBER} s \(median of 2: "), out
    assert lines(
        out, rf"^ratio engine / reference: {NUMBER}x .*360 baseline rows, statuses \{{'OK': 30\}}"
    ), out
    assert lines(
        out, rf"^settle \(digest \+ engine \+ store\): {NUMBER} s; again with nothing new: {NUMBER} s"
    ), out


@pytest.mark.slow
def test_standardized_publish(run_bench):
    # with a 1 ms latency the requests go through the forwarding proxy too
    out = run_bench("standardized_publish.py", "--objects", "40", "--workers", "1", "4", "--latency-ms", "1")
    for label in (
        "render only:",
        "serial:",
        "put_many   1 workers:",
        "put_many   4 workers:",
        "publish end to end:",
    ):
        assert lines(out, rf"^{re.escape(label)}\s+{NUMBER} objects/s \({NUMBER} s for 40\)"), (label, out)
    assert lines(out, rf"^put_many   4 workers: .* = {NUMBER}x serial; client CPU {NUMBER} ms/object"), out
    assert lines(out, r"^re-run, nothing changed: 0 objects in "), out


@pytest.mark.slow
def test_sftp_latency_self_contained(run_bench):
    out = run_bench("sftp_latency.py", "--self-contained", "--uploads", "2", "--gap", "0", "--tick", "0.5")
    assert lines(out, r"^self-contained: SFTP server on 127\.0\.0\.1:\d+"), out
    assert len(lines(out, rf"^latency-[0-9a-f]{{8}}\.csv: accepted after {NUMBER} s$")) == 2, out
    assert lines(
        out, rf"^close -> result: median {NUMBER} s, p95 {NUMBER} s, max {NUMBER} s over 2 uploads"
    ), out


@pytest.mark.slow
def test_scale_curves(run_bench):
    out = run_bench(
        "scale_curves.py",
        *("--meters", "20,40", "--uploads", "1,3", "--processed", "200"),
        *("--size-meters", "5", "--size-days", "4", "--repeat", "1"),
    )
    assert lines(out, r"^machine: .* cores, .* GB RAM; Python .*duckdb .*polars "), out
    for meters in (20, 40):
        assert lines(out, rf"^settlement meters={meters} days=45 readings=\d+ seconds={NUMBER} "), out
        assert lines(out, rf"^intake_into meters={meters} readings=\d+ rows=384 seconds={NUMBER} "), out
    for uploads in (1, 3):
        assert lines(out, rf"^intake uploads={uploads} rows={uploads * 384} seconds={NUMBER} "), out
    assert lines(
        out, rf"^sensor processed=200 uploads_rows=200 idle_tick_seconds={NUMBER} .* runs_requested=4 "
    ), out
    assert lines(out, r"^warehouse meters=5 days=4 readings=1920 .* mb_per_meter_year=-?[0-9.]+"), out


@pytest.mark.slow
def test_multi_writer_benchmark(run_bench):
    out = run_bench("multi_writer.py", "--files", "2", "--meters", "2", "--days", "1", "--repeat", "1")
    for kind, workers in (("duckdb", 1), ("ducklake", 1), ("ducklake", 2)):
        assert lines(out, rf"^{kind} +workers={workers} seconds={NUMBER} uploads_per_second={NUMBER}"), out
    assert lines(out, rf"^ducklake two workers ÷ one worker throughput: {NUMBER}×"), out


@pytest.mark.slow
def test_lake_curves(run_bench):
    out = run_bench("lake_curves.py", "--meters", "20", "--days", "12", "--uploads", "2", "--repeat", "1")
    for curve in ("settlement", "intake"):
        for kind, workers in (("duckdb", 1), ("ducklake", 1), ("ducklake", 2)):
            assert lines(out, rf"^{curve} backend={kind} workers={workers} .*seconds={NUMBER}"), out
        assert lines(out, rf"^{curve} .*ducklake two workers ÷ one worker throughput: {NUMBER}×"), out
