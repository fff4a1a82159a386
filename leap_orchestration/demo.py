"""Demo data: the demo configuration, a good and a bad upload per SFTP partner, a connector's upload waiting
in the local landing zone, and a summer of history for every enrolled meter (leap_orchestration/demo_history.py)
waiting in its owner's inbox, written into LEAP_HOME."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from leap_orchestration.config.demo_config import (
    DEMO_CONNECTOR,
    DEMO_PARTICIPANT,
    DEMO_PARTNERS,
    demo_meters,
    write_demo_configuration,
)
from leap_orchestration.demo_history import history_files
from leap_orchestration.stores.local import SFTP_INBOX

HEADER = "meter_uuid,interval_start_time_utc,interval_end_time_utc,energy_net_kwh,energy_consumed_kwh,energy_generated_kwh,final,region\n"


def _rows(meter_id: str, region: str, start: dt.datetime, intervals: int) -> list[str]:
    rows = []
    for k in range(intervals):
        s = start + dt.timedelta(minutes=15 * k)
        hour = s.hour
        consumed = round(0.3 + 0.25 * (1 if 16 <= hour <= 21 else 0) + 0.02 * (k % 5), 3)
        generated = round(0.2 if 10 <= hour <= 16 else 0.0, 3)
        rows.append(
            f"{meter_id},{s:%Y-%m-%dT%H:%M:%SZ},{s + dt.timedelta(minutes=15):%Y-%m-%dT%H:%M:%SZ},"
            f"{consumed - generated:.3f},{consumed:.3f},{generated:.3f},true,{region}\n"
        )
    return rows


def write_demo(home: Path, now: dt.datetime | None = None) -> dict[str, list[Path]]:
    """Config into home/config, inboxes for every partner, demo uploads into home/demo-uploads/<partner>/."""
    now = (now or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0)
    config = home / "config"
    if config.exists():
        shutil.rmtree(config)
    write_demo_configuration(config)
    start = now - dt.timedelta(days=2)
    written: dict[str, list[Path]] = {}
    for partner in DEMO_PARTNERS:
        mine = [m for m in demo_meters() if m.owner == partner and m.source == "partner"]
        (home / "landing" / partner / SFTP_INBOX).mkdir(parents=True, exist_ok=True)
        folder = home / "demo-uploads" / partner
        folder.mkdir(parents=True, exist_ok=True)
        good = folder / f"{partner}-interval-data-{start:%Y%m%d}.csv"
        good.write_text(HEADER + "".join(r for m in mine[:3] for r in _rows(m.meter_id, m.region, start, 96)))
        bad = folder / f"{partner}-with-errors-{start:%Y%m%d}.csv"
        rows = _rows(mine[0].meter_id, mine[0].region, start, 8)
        rows[1] = rows[1].replace(",true,", ",maybe,")
        rows[3] = rows[3].replace(mine[0].meter_id, "not-a-uuid")
        rows[5] = rows[5].replace("Z,", "+05:00,", 1)
        rows[6] = ",".join(rows[6].split(",")[:3]) + "\n"
        bad.write_text(HEADER + "".join(rows))
        written[partner] = [good, bad]
    written[DEMO_PARTICIPANT] = [_connector_upload(home, start)]
    for owner, path in _history_uploads(home).items():
        written.setdefault(owner, []).append(path)
    return written


HISTORY_NAME = "{tenant}-history-2025-summer.csv"


def _history_uploads(home: Path) -> dict[str, Path]:
    """The demo history, as each meter's owner would upload it: into the SFTP partners' inboxes and, for the GCS
    participant, its connector's landing-zone prefix; left alone where it was processed already."""
    written = {}
    for owner, lines in history_files().items():
        tenant = DEMO_CONNECTOR if owner == DEMO_PARTICIPANT else owner
        inbox = (
            home / "buckets" / "landing_zone" / DEMO_CONNECTOR
            if owner == DEMO_PARTICIPANT
            else home / "landing" / owner / SFTP_INBOX
        )
        name = HISTORY_NAME.format(tenant=tenant)
        if not any((inbox / outcome / name).exists() for outcome in ("accepted", "failed")):
            inbox.mkdir(parents=True, exist_ok=True)
            (inbox / name).write_text(HEADER + "".join(lines))
        written[owner] = inbox / name
    return written


# The data-upload guide's download example names meter 3 on this day (participant_1/<connector>/standardized/3/...).
GUIDE_DAY = dt.datetime(2021, 11, 8, tzinfo=dt.UTC)


def _connector_upload(home: Path, start: dt.datetime) -> Path:
    """What connector ext_conn1 would have created in the landing zone (`gsutil cp`): its meters, on the guide's
    example day and the last two days. Dropped into the local landing zone unless it was processed already."""
    mine = [m for m in demo_meters() if m.owner == DEMO_PARTICIPANT]
    name = f"{DEMO_CONNECTOR}-readings-{start:%Y%m%d}.csv"
    body = HEADER + "".join(
        r
        for m in mine
        for day in (GUIDE_DAY, start)
        for r in _rows(m.meter_id, m.region, day, 96 * (1 if day == GUIDE_DAY else 2))
    )
    folder = home / "demo-uploads" / DEMO_PARTICIPANT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body)
    inbox = home / "buckets" / "landing_zone" / DEMO_CONNECTOR
    if not (inbox / "accepted" / name).exists():
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / name).write_text(body)
    return folder / name
