"""What operators see of uploads (plain functions over the warehouse): recent outcomes and why a batch failed."""

import os
import time

from conftest import csv_text, good_row, partner_meter

from leap_orchestration.intake import outcomes
from leap_orchestration.intake.discovery import pending_uploads
from leap_orchestration.intake.process import process_upload
from leap_orchestration.stores import LocalLandingStore

INBOX = "sunrise-energy/interval-data/"


def test_recent_uploads_and_the_reasons_of_a_failed_batch(leap_home, warehouse):
    store = LocalLandingStore(leap_home / "landing")
    meter = partner_meter("sunrise-energy").meter_id
    bad = csv_text(good_row(meter, consumed="x"), good_row("nope"), good_row("nope2"))
    for name, data in (("good.csv", csv_text(good_row(meter))), ("bad.csv", bad)):
        store.write_bytes(INBOX + name, data)
        os.utime(store.path(INBOX + name), (time.time() - 60,) * 2)
    done = [process_upload(store, warehouse, u) for u in pending_uploads(store)]
    failed_jobs = [o.upload.job_id for o in done if o.status == "FAILED"]
    with warehouse.connect(read_only=True) as con:
        recent = {r["file"]: r for r in outcomes.recent_uploads(con)}
        failed = outcomes.failed_uploads(con, failed_jobs)
        by_code = outcomes.code_counts(con, failed_jobs)
        first = outcomes.first_errors(con, failed_jobs, limit=2)
    assert recent["good.csv"]["status"] == "COMPLETED" and recent["good.csv"]["top_codes"] == ""
    assert recent["bad.csv"]["top_codes"] == "MTR_0002 ×2, CON_0002 ×1" and recent["bad.csv"]["errors"] == 3
    assert (
        len(recent["bad.csv"]["processed_utc"]) == len("2026-12-01 21:49")
        and recent["bad.csv"]["source"] == "sunrise-energy"
    )
    assert [(f["file"], f["errors"]) for f in failed] == [("bad.csv", 3)]
    assert by_code == [
        {"code": "MTR_0002", "column": "meter_uuid", "count": 2},
        {"code": "CON_0002", "column": "energy_consumed_kwh", "count": 1},
    ]
    assert [(e["line"], e["code"]) for e in first] == [(2, "CON_0002"), (3, "MTR_0002")]
    with warehouse.connect(read_only=True) as con:
        assert outcomes.failed_uploads(con, []) == outcomes.first_errors(con, []) == []
