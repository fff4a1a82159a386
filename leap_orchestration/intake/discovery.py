"""Find complete pending uploads in every tenant inbox of a landing store."""

from __future__ import annotations

import itertools
import time

from leap_orchestration.intake.process import Upload
from leap_orchestration.stores.base import LandingStore, check_key, is_temp_name

UPLOAD_SUFFIXES = (".csv", ".csv.gz")  # the names a connector's upload may have, in any case


def is_connector_zone(store: LandingStore) -> bool:
    """A landing zone of connectors: its inboxes are fixed by properties.xml (the GCS store, or the local
    stand-in built with `inboxes`), unlike the SFTP partners' store, whose inboxes are the
    `<partner>/interval-data/` folders found in it."""
    return getattr(store, "inboxes", None) is not None


def _safe_key(key: str) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True


def is_upload_name(name: str) -> bool:
    return name.lower().endswith(UPLOAD_SUFFIXES)


def pending_uploads(store: LandingStore) -> list[Upload]:
    """Every non-temporary file waiting in an inbox, oldest first per tenant, tenants interleaved."""
    return scan_inboxes(store)[0]


def scan_inboxes(store: LandingStore) -> tuple[list[Upload], list[Upload]]:
    """One listing of every inbox: (pending uploads, objects that are not uploads).

    In a connectors' landing zone only `.csv`/`.csv.gz` objects (any case) are uploads; anything else directly
    under a connector's prefix (a `readme.txt` put there for the connector) is left where it is and returned
    second, for the schedule to report. In an SFTP partner's inbox every name is an upload, so a wrong one
    fails with FIL_0005 and the partner hears of it. Temporary names (`is_temp_name`) are neither. A name the
    store refuses as a key (a backslash or NUL: a valid GCS name, never an SFTP one) is never an upload: taking
    it would fail every run that lists it, for every tenant.
    Uploads are oldest first per tenant, tenants interleaved: one tenant's bulk drop can't starve the others
    when work per run is bounded.
    """
    only_named_uploads = is_connector_zone(store)
    per_tenant, others = [], []
    for tenant, inbox in store.list_tenant_inboxes():
        files = [Upload(tenant, inbox, o) for o in store.list_files(inbox) if not is_temp_name(o.name)]
        others += [u for u in files if not _safe_key(u.obj.key)]
        files = [u for u in files if _safe_key(u.obj.key)]
        if only_named_uploads:
            others += [u for u in files if not is_upload_name(u.obj.name)]
            files = [u for u in files if is_upload_name(u.obj.name)]
        per_tenant.append(files)  # list_files sorts by mtime
    interleaved = itertools.chain.from_iterable(itertools.zip_longest(*per_tenant))
    return [u for u in interleaved if u is not None], others


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
