"""What one sensor tick takes: complete files, in bounded batches, never skipping one.

State (the sensor cursor) is keyed by file and version, not by time, so an old mtime cannot hide a file:
- `seen`: key -> [version, first seen at]: a file is complete once the same version has been seen for
  `settle_seconds` (or its mtime is already that old when first seen), or at once when the store says it was
  published whole (the SFTP server's uploads, GCS objects).
- `requested`: key -> [version, requested at, attempt]: a requested file still pending after `retry_seconds`
  is requested again (processing is idempotent, so a duplicate run is harmless).
Entries for files that left the inbox are dropped, so the cursor stays as small as the backlog.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from leap_orchestration.intake.process import Upload


@dataclass
class TickPlan:
    batches: list[list[Upload]] = field(default_factory=list)
    run_keys: list[str] = field(default_factory=list)
    state: dict = field(default_factory=dict)


def plan_tick(
    pending: list[Upload],
    state: dict,
    now: float,
    *,
    settle_seconds: float,
    retry_seconds: float,
    max_per_run: int,
    max_runs: int,
) -> TickPlan:
    seen_before = state.get("seen", {})
    requested_before = state.get("requested", {})
    seen, requested, ready = {}, {}, []
    for upload in pending:
        key, version = upload.obj.key, upload.obj.version
        prior = seen_before.get(key)
        first_seen = prior[1] if prior and prior[0] == version else now
        seen[key] = [version, first_seen]
        unchanged_across_ticks = first_seen < now and now - first_seen >= settle_seconds
        untouched_for_long = now - upload.obj.mtime_ns / 1e9 >= 4 * settle_seconds
        stable = upload.obj.complete or unchanged_across_ticks or untouched_for_long
        asked = requested_before.get(key)
        if asked and asked[0] == version:
            requested[key] = asked
            if now - asked[1] < retry_seconds:
                continue  # a run for it is queued or in progress
        if stable:
            ready.append(upload)
    plan = TickPlan()
    for start in range(0, min(len(ready), max_per_run * max_runs), max_per_run):
        batch = ready[start : start + max_per_run]
        attempts = [requested_before.get(u.obj.key, [None, 0, 0]) for u in batch]
        attempt = max(
            (a[2] + 1 if a[0] == u.obj.version else 1) for a, u in zip(attempts, batch, strict=True)
        )
        plan.batches.append(batch)
        plan.run_keys.append(f"uploads-{batch_digest(batch)}-{attempt}")
        for u in batch:
            requested[u.obj.key] = [u.obj.version, now, attempt]
    plan.state = {"seen": seen, "requested": requested}
    return plan


def batch_digest(batch: list[Upload]) -> str:
    """Names a set of file versions (order-free): the stable part of a run key."""
    return hashlib.sha256(
        "\n".join(sorted(f"{u.obj.key}@{u.obj.version}" for u in batch)).encode()
    ).hexdigest()[:20]


def config_entry(upload: Upload) -> str:
    return f"{upload.obj.key}|{upload.obj.version}"
