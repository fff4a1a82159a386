"""Where results go in the landing store (the layout partners and connectors rely on: ARCHITECTURE.md)."""

from __future__ import annotations

import hashlib
import uuid

from leap_orchestration.intake.limits import MAX_NAME_BYTES

ACCEPTED, FAILED = "accepted", "failed"
RESULT_FOLDERS = (ACCEPTED, FAILED, "status")
# Fixed namespace: a job id is derived from the upload's identity, so a re-run after a crash reuses it.
_JOB_NAMESPACE = uuid.UUID("0b6f3c1e-5d57-4f3e-9a51-1c1c2b9a7e10")


def job_id_for(tenant: str, key: str, version: str) -> str:
    return str(uuid.uuid5(_JOB_NAMESPACE, f"{tenant}\x00{key}\x00{version}"))


def upload_id_for(tenant: str, name: str, version: str) -> str:
    return f"{tenant}/{name}@{version}"


def result_name(name: str) -> str:
    """The name results are stored under: the upload's own, or for an over-long name (FIL_0009) its first 150
    bytes + '~' + a hash, so that `status/<name>.json` and archived originals fit a file system's 255 bytes."""
    raw = name.encode()
    if len(raw) <= MAX_NAME_BYTES:
        return name
    return raw[:150].decode("utf-8", "ignore") + "~" + hashlib.sha256(raw).hexdigest()[:12]


def result_dir(inbox: str, outcome: str, name: str) -> str:
    return f"{inbox}{outcome}/{result_name(name)}/"


def status_key(inbox: str, name: str) -> str:
    return f"{inbox}status/{result_name(name)}.json"


def errors_key(inbox: str, name: str, job_id: str) -> str:
    return f"{result_dir(inbox, FAILED, name)}{job_id}.errors.csv"


def feedback_key(inbox: str, outcome: str, name: str, job_id: str) -> str:
    return f"{result_dir(inbox, outcome, name)}{job_id}.feedback"


def original_key(inbox: str, outcome: str, name: str) -> str:
    return f"{result_dir(inbox, outcome, name)}{result_name(name)}"
