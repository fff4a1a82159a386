"""`leap-orchestration partners ...` and `leap-orchestration sftp ...` (the CLI contract: README.md)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from leap_orchestration import settings


def _credentials():
    from leap_orchestration.sftp.credentials import PartnerCredentials

    return PartnerCredentials(settings.credentials_path())


@click.group()
def partners() -> None:
    """SFTP partner credentials (API keys; only their hashes are stored)."""


@partners.command("add")
@click.argument("partner_id")
def partners_add(partner_id: str) -> None:
    """Create an API key for PARTNER_ID; the key is printed once, alone on the last line."""
    from leap_orchestration.cli_errors import UsageError
    from leap_orchestration.stores import LocalLandingStore
    from leap_orchestration.stores.local import SFTP_INBOX

    try:
        key_id, api_key = _credentials().add(partner_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if partner_id not in _configured_partners():
        click.echo(
            f"warning: {partner_id!r} is not an SFTP partner in properties.xml; its uploads will fail "
            "MTR_0003 until its meters are configured",
            err=True,
        )
    # the inbox exists from the start, so the partner sees interval-data/ and the sensor watches it
    LocalLandingStore(settings.landing_root()).path(f"{partner_id}/{SFTP_INBOX}").mkdir(
        parents=True, exist_ok=True
    )
    click.echo(f"Created key {key_id} for partner {partner_id}. Store it now: it is not shown again.")
    click.echo(api_key)


@partners.command("revoke")
@click.argument("partner_id")
@click.option("--key", "key_id", help="Revoke only this key id (default: every key of the partner).")
def partners_revoke(partner_id: str, key_id: str | None) -> None:
    """Revoke PARTNER_ID's keys (or one of them)."""
    from leap_orchestration.cli_errors import UsageError

    count = _credentials().revoke(partner_id, key_id)
    if count == 0:
        which = f"key {key_id}" if key_id else "key"
        raise UsageError(f"no live {which} for partner {partner_id!r}")
    click.echo(f"Revoked {count} key(s) of {partner_id}.")


@partners.command("list")
def partners_list() -> None:
    """Every key: partner, key id, created, revoked."""
    keys = _credentials().list()
    click.echo("partner_id\tkey_id\tcreated_at\trevoked_at")
    for k in keys:
        click.echo(f"{k.partner_id}\t{k.key_id}\t{k.created_at}\t{k.revoked_at or ''}")


def _configured_partners() -> set[str]:
    from leap_orchestration.config.loader import default_config_dir, load_configuration

    try:
        return {p.partner_id for p in load_configuration(default_config_dir()).properties.sftp_partners}
    except Exception:  # noqa: BLE001 - a warning only; the configuration's own errors surface elsewhere
        return set()


@click.group()
def sftp() -> None:
    """The SFTP server partners upload to."""


@sftp.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2222, show_default=True, type=int)
@click.option(
    "--banner-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="LEAP_SFTP_BANNER_FILE",
    help="Text shown before login (default: what the server is for).",
)
@click.option("--max-upload-mb", default=2048, show_default=True, type=int, envvar="LEAP_SFTP_MAX_UPLOAD_MB")
@click.option(
    "--quota-mb",
    default=10240,
    show_default=True,
    type=int,
    envvar="LEAP_SFTP_QUOTA_MB",
    help="Per partner: MB waiting in its inbox plus MB being uploaded; writes beyond it fail.",
)
@click.option(
    "--max-sessions",
    default=8,
    show_default=True,
    type=int,
    envvar="LEAP_SFTP_MAX_SESSIONS",
    help="Concurrent SFTP sessions (channels) per partner.",
)
@click.option("--idle-timeout", default=600, show_default=True, type=float, envvar="LEAP_SFTP_IDLE_SECONDS")
def sftp_serve(
    host: str,
    port: int,
    banner_file: Path | None,
    max_upload_mb: int,
    quota_mb: int,
    max_sessions: int,
    idle_timeout: float,
) -> None:
    """Run the SFTP server over the landing store (Ctrl-C stops it)."""
    from leap_orchestration.sftp import hostkeys
    from leap_orchestration.sftp.server import DEFAULT_BANNER, SftpService, SftpSettings, serve_forever
    from leap_orchestration.stores import LocalLandingStore

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # the audit lines say what matters
    keys = hostkeys.load_or_create(settings.sftp_dir())
    options = SftpSettings(
        host=host,
        port=port,
        banner=banner_file.read_text() if banner_file else DEFAULT_BANNER,
        max_upload_bytes=max_upload_mb * 1024**2,
        quota_bytes=quota_mb * 1024**2,
        max_sessions_per_partner=max_sessions,
        idle_timeout_seconds=idle_timeout,
    )
    service = SftpService(
        LocalLandingStore(settings.landing_root()),
        _credentials(),
        keys,
        options,
        audit_log=settings.sftp_audit_log(),
    )
    click.echo(f"SFTP server on {host}:{port}; host keys:", err=True)
    for line in hostkeys.fingerprints(keys):
        click.echo(f"  {line}", err=True)
    try:
        asyncio.run(serve_forever(service))
    except KeyboardInterrupt:
        pass


@sftp.command("fingerprint")
def sftp_fingerprint() -> None:
    """Print the host key fingerprints (SHA256:...), one line per algorithm (keys are created if missing)."""
    from leap_orchestration.sftp import hostkeys

    for line in hostkeys.fingerprints(hostkeys.load_or_create(settings.sftp_dir())):
        click.echo(line)
