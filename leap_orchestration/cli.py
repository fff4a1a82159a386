"""The `leap-orchestration` command line (the CLI contract in README.md and ARCHITECTURE.md). Expected faults: one line, no traceback."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from leap_orchestration import settings

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
REPO_ROOT = Path(__file__).resolve().parents[1]


class UsageError(click.ClickException):
    exit_code = EXIT_USAGE


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Interval-data intake and demand-response settlement (LEAP_HOME, LEAP_CONFIG)."""


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--partner", required=True, help="The uploading partner's id.")
def validate(file: Path, partner: str) -> None:
    """Run every rule on FILE as the pipeline would; errors on stdout (errors.csv format)."""
    from leap_orchestration.intake.meters import PartnerMeters
    from leap_orchestration.intake.reports import errors_csv, feedback_text
    from leap_orchestration.intake.validate import validate_upload

    if not file.is_file():
        raise UsageError(f"no such file: {file}")
    ownership = _ownership()
    if partner not in set(ownership["partner_id"].to_list()):
        raise UsageError(f"unknown partner {partner!r}: no meter in the configuration names it")
    meters = PartnerMeters.from_ownership(ownership, partner, dt.datetime.now(dt.UTC))
    with file.open("rb") as fh:
        report = validate_upload(fh, file.name, meters)
    sys.stdout.write(errors_csv((f.line, f.column, f.code, f.message) for f in report.details).decode())
    summary = [[c, code, n] for (c, code), n in report.counts.items()]
    click.echo(
        feedback_text(
            report.lines_parsed, report.elapsed_ms, report.error_count, report.error_lines, summary
        ).rstrip(),
        err=True,
    )
    sys.exit(EXIT_VALID if report.valid else EXIT_INVALID)


def _ownership():
    """Meters in force: the warehouse's if it has a configuration, else the XML configuration files."""
    from leap_orchestration.config.errors import ConfigError
    from leap_orchestration.config.loader import default_config_dir, load_configuration
    from leap_orchestration.warehouse import Warehouse
    from leap_orchestration.warehouse.config_tables import ownership_from_configuration
    from leap_orchestration.warehouse.intake_tables import ConfigurationNotLoaded, partner_ownership

    if settings.warehouse_path().exists():
        try:
            with Warehouse(settings.warehouse_path()).connect(read_only=True, wait_seconds=10) as con:
                return partner_ownership(con)
        except (ConfigurationNotLoaded, Exception):  # noqa: BLE001 - locked or empty: fall back to the files
            pass
    try:
        return ownership_from_configuration(load_configuration(default_config_dir()))
    except ConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None


@main.command()
@click.option("--tenant", required=True, help="Partner id (SFTP) or connector id (GCS).")
@click.argument("name")
def status(tenant: str, name: str) -> None:
    """Print the status object of upload NAME."""
    from leap_orchestration.intake.layout import status_key
    from leap_orchestration.stores import LocalLandingStore
    from leap_orchestration.stores.base import check_key

    inbox = f"{tenant}/interval-data/"
    try:
        key = check_key(status_key(inbox, name))
        if "/" in name:
            raise ValueError(name)
    except ValueError:
        raise UsageError(f"invalid upload name: {name!r}") from None
    store = LocalLandingStore(settings.landing_root())
    if not store.exists(key):
        raise UsageError(f"no status for {name!r} of tenant {tenant!r}")
    click.echo(store.read_bytes(key).decode().rstrip())


@main.command()
@click.option("--no-serve", is_flag=True, help="Only write the demo configuration and uploads.")
def demo(no_serve: bool) -> None:
    """Write the demo configuration and uploads into LEAP_HOME, then start the SFTP server and the Dagster UI."""
    from leap_orchestration.demo import write_demo

    home = settings.leap_home()
    written = write_demo(home)
    click.echo(f"Demo configuration: {home / 'config'}")
    for partner, files in written.items():
        for f in files:
            click.echo(f"Demo upload for {partner}: {f}")
    first_partner, files = next(iter(written.items()))
    click.echo(
        f"\nThe summer-2025 history of every enrolled meter (and connector ext_conn1's upload) waits in the "
        f"inboxes; before the UI starts, the whole asset graph runs once to take it in and settle the demo events.\n"
        f"Drop another file into a partner's inbox to process it, e.g.:\n"
        f"  cp {files[0]} {home / 'landing' / first_partner / 'interval-data'}/\n"
        f"Standardized output of the connector, by path:\n"
        f"  cat {home / 'buckets' / 'participant_1' / 'ext_conn1' / 'standardized' / '3' / '2021-11-08T14:00:00'}"
    )
    if no_serve:
        return
    partner, api_key = _demo_credential(first_partner)
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "LEAP_HOME": str(home),
        "LEAP_CONFIG": str(home / "config"),
    }
    binaries = Path(sys.executable).parent
    click.echo("Running the whole asset graph once (configuration, intake, landing zone, settlement)...")
    # the demo wrote these files itself, complete: no need to wait for them to settle
    catch_up = subprocess.run(
        [
            str(binaries / "dagster"),
            "asset",
            "materialize",
            "--select",
            "*",
            "-m",
            "leap_orchestration.definitions",
        ],
        cwd=REPO_ROOT,
        env={**env, "LEAP_SETTLE_SECONDS": "0"},
        capture_output=True,
        text=True,
    )
    if catch_up.returncode != 0:
        click.echo(f"The first run failed (see the run in the UI):\n{catch_up.stderr[-2000:]}", err=True)
    sftp_server = subprocess.Popen(
        [str(binaries / "leap-orchestration"), "sftp", "serve", "--port", str(DEMO_SFTP_PORT)], env=env
    )
    click.echo(
        f"\nSFTP server on 127.0.0.1:{DEMO_SFTP_PORT}. Connect as the demo partner (password = its API key):\n"
        f"  sftp -P {DEMO_SFTP_PORT} {partner}@127.0.0.1\n  password: {api_key}\n"
        f"  sftp> put {files[0]} interval-data/\n"
        f"(the key is kept in {home / DEMO_KEY_FILE} for the demo only)"
    )
    click.echo(
        "Event performance: asset event_performance (charts in its metadata), tables event_performance, "
        "program_event_performance and season_performance in the warehouse."
    )
    click.echo(f"Starting the Dagster UI on http://127.0.0.1:3000 (DAGSTER_HOME={dagster_home})")
    try:
        code = subprocess.call(
            [
                str(binaries / "dagster"),
                "dev",
                "-w",
                str(REPO_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                "3000",
            ],
            cwd=REPO_ROOT,
            env=env,
        )
    finally:
        sftp_server.terminate()
        sftp_server.wait(timeout=10)
    sys.exit(code)


DEMO_SFTP_PORT = 2222
DEMO_KEY_FILE = "demo-api-key.txt"


def _demo_credential(partner: str) -> tuple[str, str]:
    """The demo partner's API key: reused while it is valid, so the demo prints the same one each start."""
    from leap_orchestration.sftp.credentials import PartnerCredentials

    credentials = PartnerCredentials(settings.credentials_path())
    saved = settings.leap_home() / DEMO_KEY_FILE
    kept = saved.read_text().strip() if saved.exists() else ""
    if kept and credentials.verify(partner, kept):
        return partner, kept
    _, api_key = credentials.add(partner)
    saved.write_text(api_key + "\n")
    saved.chmod(0o600)
    return partner, api_key


def _register_subcommands() -> None:
    from leap_orchestration.cli_sftp import partners, sftp

    main.add_command(partners)
    main.add_command(sftp)


_register_subcommands()
