"""Find complete pending uploads in every tenant inbox of a landing store."""

from __future__ import annotations

import itertools
import time

from leap_orchestration.intake.process import Upload
from leap_orchestration.stores.base import LandingStore, is_temp_name


def pending_uploads(store: LandingStore) -> list[Upload]:
    """Every non-temporary file waiting in an inbox, oldest first per tenant, tenants interleaved.

    Interleaving keeps one tenant's bulk drop from starving the others when work per run is bounded.
    """
    per_tenant = []
    for tenant, inbox in store.list_tenant_inboxes():
        files = [o for o in store.list_files(inbox) if not is_temp_name(o.name)]
        per_tenant.append([Upload(tenant, inbox, o) for o in files])  # list_files sorts by mtime
    interleaved = itertools.chain.from_iterable(itertools.zip_longest(*per_tenant))
    return [u for u in interleaved if u is not None]


def is_settled(upload: Upload, now_ns: int, settle_seconds: float) -> bool:
    """Published whole (SFTP server, GCS), or unchanged for `settle_seconds` by its mtime."""
    return upload.obj.complete or now_ns - upload.obj.mtime_ns >= settle_seconds * 1e9


def settled_uploads(store: LandingStore, settle_seconds: float) -> list[Upload]:
    """Pending uploads whose size and mtime stay the same across `settle_seconds` (one-shot runs).

    Files already older than that are taken at once; younger ones are looked at again after a short wait.
    """
    first = pending_uploads(store)
    now_ns = time.time_ns()
    young = [u for u in first if not is_settled(u, now_ns, settle_seconds)]
    if not young:
        return first
    time.sleep(settle_seconds)
    again = {u.obj.key: u for u in pending_uploads(store)}
    return [u for u in first if (a := again.get(u.obj.key)) is not None and a.obj.version == u.obj.version]
