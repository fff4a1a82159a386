"""The `leap-orchestration` command line (the CLI contract in README.md and ARCHITECTURE.md). Expected faults: one line, no traceback."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from leap_orchestration import settings
from leap_orchestration.cli_errors import EXIT_INVALID, EXIT_VALID, UsageError

REPO_ROOT = Path(__file__).resolve().parents[1]


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
    from leap_orchestration.warehouse import configured_warehouse
    from leap_orchestration.warehouse.config_tables import ownership_from_configuration
    from leap_orchestration.warehouse.intake_tables import ConfigurationNotLoaded, partner_ownership

    warehouse = configured_warehouse()
    if warehouse.exists():
        try:
            with warehouse.connect(read_only=True, wait_seconds=10) as con:
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
@click.option("--partner", required=True, help="The partner (SFTP) or participant (GCS) id.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (the columns of missing-intervals.csv).")
def missing(partner: str, as_csv: bool) -> None:
    """The readings PARTNER still owes: missing 15-minute intervals that change an event's numbers, as windows of
    consecutive intervals per meter, with the events they affect and the submission deadline."""
    import duckdb

    from leap_orchestration.statements.missing import COLUMNS, owed_windows
    from leap_orchestration.warehouse import configured_warehouse

    try:
        with configured_warehouse().connect(read_only=True, wait_seconds=10) as con:
            known = con.execute(
                "SELECT count(*) FROM meter_ownership WHERE partner_id = ?", [partner]
            ).fetchall()
            if not known[0][0]:
                raise UsageError(f"unknown partner {partner!r}: no meter in the configuration names it")
            owed = owed_windows(con, dt.datetime.now(dt.UTC), partner).select(COLUMNS)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except duckdb.IOException as exc:  # a run held the warehouse's lock for longer than the wait
        raise click.ClickException(
            f"the warehouse is busy ({exc}); try again when the run has finished"
        ) from None
    if as_csv:
        sys.stdout.write(owed.write_csv())
        return
    if owed.is_empty():
        click.echo(f"{partner} owes no readings: every event's windows are complete.")
        return
    shown = (
        "meter_id",
        "window_start_local",
        "window_start_utc",
        "window_end_utc",
        "intervals",
        "windows",
        "events",
    )
    widths = {c: max(len(c), *(len(str(v)) for v in owed[c].to_list())) for c in shown}
    click.echo("  ".join(c.ljust(widths[c]) for c in shown) + "  submission_deadline_utc")
    for row in owed.iter_rows(named=True):
        late = "  (passed)" if row["overdue"] else ""
        click.echo(
            "  ".join(str(row[c]).ljust(widths[c]) for c in shown)
            + f"  {row['submission_deadline_utc']}{late}"
        )
    total = int(owed["intervals"].sum())
    click.echo(
        f"{total} intervals in {owed.height} windows; upload them to interval-data/ as usual.", err=True
    )


@main.command()
@click.option("--no-serve", is_flag=True, help="Only write the demo configuration and uploads.")
@click.option("--ui-port", default=3000, show_default=True, help="The Dagster UI's port on 127.0.0.1.")
@click.option("--sftp-port", default=2222, show_default=True, help="The SFTP server's port on 127.0.0.1.")
def demo(no_serve: bool, ui_port: int, sftp_port: int) -> None:
    """Write the demo configuration and uploads into LEAP_HOME, then start the SFTP server and the Dagster UI."""
    from leap_orchestration.demo import write_demo

    home = settings.leap_home()
    written = write_demo(home)
    first_partner, files = next(iter(written.items()))
    if no_serve:
        click.echo(f"Demo configuration: {home / 'config'}")
        for partner, uploads in written.items():
            for f in uploads:
                click.echo(f"Demo upload for {partner}: {f}")
        click.echo(
            f"\nThe summer-2025 history of every enrolled meter (and connector ext_conn1's upload) waits in the "
            f"inboxes; `dg launch --assets '*'` takes it in and settles the demo events.\n"
            f"Drop another file into a partner's inbox to process it, e.g.:\n"
            f"  cp {files[0]} {home / 'landing' / first_partner / 'interval-data'}/"
        )
        return
    sys.exit(_serve_demo(home, first_partner, files[0], ui_port, sftp_port))


DEMO_KEY_FILE = "demo-api-key.txt"
DEMO_READY_SECONDS = 300


def _serve_demo(home: Path, partner: str, sample: Path, ui_port: int, sftp_port: int) -> int:
    """The first run, then the SFTP server and `dg dev` with their output in $LEAP_HOME/logs/; the URL and the
    SFTP instructions are printed last, once both answer, so nothing scrolls them away."""
    import signal

    # Ctrl-C stops the demo even if it was started with SIGINT ignored (in the background): the children then
    # start with the default handler too, so `dg dev` shuts its webserver, daemon and code server down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    busy = [port for port in (ui_port, sftp_port) if _port_open(port)]
    if busy:  # else the webserver would fail to bind and keep running, and the demo wait for nothing
        click.echo(
            f"Port {' and '.join(map(str, busy))} on 127.0.0.1 already in use (another demo or `dg dev`?); "
            "stop it first.",
            err=True,
        )
        return 1
    partner, api_key = _demo_credential(partner)
    # absolute, and the UI's current folder (ui_command): dagster dev compares them as written
    dagster_home = (home / "dagster").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / settings.dagster_instance_file(), dagster_home / "dagster.yaml")
    if (
        settings.warehouse_backend() == "ducklake"
    ):  # writers may overlap: raise the pool dagster.yaml sets to 1
        subprocess.run(
            [
                str(Path(sys.executable).parent / "dagster"),
                "instance",
                "concurrency",
                "set",
                "duckdb",
                str(settings.DUCKLAKE_WRITER_SLOTS),
            ],
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            check=True,
            capture_output=True,
        )
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    dagster_log, sftp_log = logs / "dagster.log", logs / "sftp-server.log"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "LEAP_HOME": str(home),
        "LEAP_CONFIG": str(home / "config"),
    }
    binaries = Path(sys.executable).parent
    click.echo(
        f"Demo data in {home}: configuration in config/, files to upload in demo-uploads/, a summer of meter "
        f"history and connector ext_conn1's upload waiting in the inboxes."
    )
    click.echo("Running the whole asset graph once (configuration, intake, landing zone, settlement)...")
    started = time.monotonic()
    with dagster_log.open("a") as out:
        out.write(
            f"\n=== {dt.datetime.now():%Y-%m-%d %H:%M:%S} demo: first run, dg launch --assets '*' ===\n"
        )
        out.flush()
        # the demo wrote these files itself, complete: no need to wait for them to settle
        first_run = subprocess.run(
            [str(binaries / "dg"), "launch", "--assets", "*"],
            cwd=REPO_ROOT,
            env={**env, "LEAP_SETTLE_SECONDS": "0"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if first_run.returncode != 0:
        click.echo(f"The first run failed; the end of {dagster_log}:", err=True)
        click.echo(_tail(dagster_log), err=True)
    else:
        click.echo(f"  done in {time.monotonic() - started:.0f} s.")
    click.echo(f"Starting the SFTP server and the Dagster UI (dg dev); their output goes to {logs}/")
    servers: list[subprocess.Popen] = []
    interrupted = False
    try:
        with sftp_log.open("a") as sftp_out, dagster_log.open("a") as ui_out:
            ui_out.write(f"\n=== {dt.datetime.now():%Y-%m-%d %H:%M:%S} demo: dg dev ===\n")
            ui_out.flush()
            sftp_server = subprocess.Popen(
                [str(binaries / "leap-orchestration"), "sftp", "serve", "--port", str(sftp_port)],
                cwd=REPO_ROOT,
                env=env,
                stdout=sftp_out,
                stderr=subprocess.STDOUT,
            )
            servers.append(sftp_server)
            ui = subprocess.Popen(
                ui_command(ui_port), cwd=dagster_home, env=env, stdout=ui_out, stderr=subprocess.STDOUT
            )
            servers.append(ui)
        ready = _wait_until_serving(ui, sftp_server, ui_port, sftp_port)
        if ui.poll() is not None or sftp_server.poll() is not None:
            return _report_stopped(ui, dagster_log, sftp_server, sftp_log)
        fingerprint = _host_key_fingerprint()
        url = f"http://127.0.0.1:{ui_port}"
        click.echo(
            "\n"
            + ("Ready." if ready else f"Still starting after {DEMO_READY_SECONDS} s (see the logs).")
            + f"\n  Dagster UI   {url}   (settlement group: event_performance charts each event)"
            + f"\n  Logs         {dagster_log} (webserver, daemon, runs), {sftp_log}"
            + "\n\nUpload a file over SFTP as the demo partner:"
            + f"\n  host 127.0.0.1, port {sftp_port}, user {partner}, password: the API key in"
            + f" {home / DEMO_KEY_FILE}\n    {api_key}"
            + f"\n  host key {fingerprint}"
            + f"\n  sftp -P {sftp_port} {partner}@127.0.0.1"
            + f"\n  sftp> put {sample} interval-data/"
            + "\n  sftp> ls interval-data/accepted"
            + f"\nOr drop it into the inbox: cp {sample} {home / 'landing' / partner / 'interval-data'}/"
            + "\n\nCtrl-C stops the UI and the SFTP server."
        )
        try:
            while ui.poll() is None and sftp_server.poll() is None:
                time.sleep(1)
            return _report_stopped(ui, dagster_log, sftp_server, sftp_log)
        except KeyboardInterrupt:
            interrupted = True
            return 0
    except KeyboardInterrupt:
        interrupted = True
        return 130
    finally:
        if interrupted:
            click.echo("\nStopping the Dagster UI and the SFTP server...")
        # Ctrl-C reached the whole process group, servers included; SIGTERM reached the demo alone
        for server in reversed(servers):
            _stop(server, signalled=interrupted and not _STOP_SIGNALS)


def ui_command(port: int) -> list[str]:
    """`dg dev` on 127.0.0.1:port for the project, to be started with the current folder = DAGSTER_HOME
    (absolute): dagster dev warns that "dagster.yaml will not be used" when the current folder has one (the
    repo's template) and isn't DAGSTER_HOME."""
    return [
        str(Path(sys.executable).parent / "dg"),
        "dev",
        "--target-path",  # dg's own settings: the project's pyproject.toml
        str(REPO_ROOT),
        "-m",  # the code location name workspace.yaml gives, so cursors and run history carry over
        "leap_orchestration.definitions",
        "-d",
        str(REPO_ROOT),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]


def _sigterm_to_interrupt(signum, frame) -> None:
    """SIGTERM (to the demo alone): stop as on Ctrl-C, and pass the stop on to the servers."""
    _STOP_SIGNALS.append(signum)
    raise KeyboardInterrupt


_STOP_SIGNALS: list[int] = []


def _stop(process: subprocess.Popen, signalled: bool) -> None:
    """Stop a server: one that got Ctrl-C is given time to shut down by itself (`dg dev` stops its webserver,
    daemon and code server); else SIGTERM, which `dg dev` takes as Ctrl-C; SIGKILL as the last resort."""
    if signalled:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _report_stopped(ui: subprocess.Popen, ui_log: Path, sftp_server: subprocess.Popen, sftp_log: Path) -> int:
    """A server exited by itself (a port in use, a crash): say which, with the end of its log; 1."""
    name, process, log = (
        ("The Dagster UI", ui, ui_log)
        if ui.poll() is not None
        else ("The SFTP server", sftp_server, sftp_log)
    )
    click.echo(f"\n{name} stopped (exit code {process.returncode}); the end of {log}:", err=True)
    click.echo(_tail(log), err=True)
    return 1


def _wait_until_serving(
    ui: subprocess.Popen, sftp_server: subprocess.Popen, ui_port: int, sftp_port: int
) -> bool:
    """True once the SFTP port accepts connections and the UI has loaded the code location; False on timeout
    or as soon as either server exits."""
    deadline = time.monotonic() + DEMO_READY_SECONDS
    sftp_up = ui_up = False
    while time.monotonic() < deadline and ui.poll() is None and sftp_server.poll() is None:
        sftp_up = sftp_up or _port_open(sftp_port)
        ui_up = ui_up or code_location_loaded(ui_port)
        if sftp_up and ui_up:
            return True
        time.sleep(1)
    return False


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def code_location_loaded(port: int) -> bool:
    """The webserver answers and every code location has finished loading (successfully or with an error,
    which the UI then shows)."""
    import json
    import urllib.request

    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            workspace = (json.load(response).get("data") or {}).get("workspaceOrError") or {}
    except (OSError, ValueError):
        return False
    entries = workspace.get("locationEntries") or []
    return bool(entries) and all(e.get("loadStatus") == "LOADED" for e in entries)


def _host_key_fingerprint() -> str:
    """The first host key's fingerprint (what `sftp` shows on the first connection), else how to get them."""
    try:
        from leap_orchestration.sftp import hostkeys

        return hostkeys.fingerprints(hostkeys.load_or_create(settings.sftp_dir()))[0]
    except Exception:  # noqa: BLE001 - only a hint on the screen
        return "fingerprints: leap-orchestration sftp fingerprint"


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


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
