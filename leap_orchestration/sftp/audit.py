"""The audit trail: one JSON line per login, upload and refused operation.

Lines are appended to the server's audit file and also logged (logger `leap.sftp.audit`) for the console.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path

log = logging.getLogger("leap.sftp.audit")


class AuditTrail:
    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, **fields) -> None:
        line = json.dumps(
            {"at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "event": event, **fields},
            default=str,
        )
        log.info(line)
        if self.path is not None:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
