"""The Kubernetes deployment files (deploy/) agree with the rest of the repository.

deploy/helm/values.yaml restates, in the Helm chart's keys, the instance settings of dagster.postgres.yaml (the same
instance off Kubernetes), and deploy/Dockerfile restates scripts/bootstrap's install and pyproject's code location.
Nothing here can see a chart or a cluster, so these tests catch one file changing without the other. The checks
against the chart itself are in docs/deployment.md ("what was tested here").
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _instance() -> dict:
    return yaml.safe_load((ROOT / "dagster.postgres.yaml").read_text())


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _snake(key: str) -> str:
    # the chart's camelCase keys become dagster.yaml's snake_case ones (startTimeoutSeconds -> start_timeout_seconds)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _snake_keys(mapping: dict) -> dict:
    return {_snake(k): v for k, v in mapping.items()}


def _deployment() -> dict:
    deployments = _values()["dagster-user-deployments"]["deployments"]
    assert [d["name"] for d in deployments] == ["leap-orchestration"]
    return deployments[0]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _uv_sync_commands() -> list[list[str]]:
    runs = [args for op, args in _dockerfile_instructions() if op == "RUN"]
    commands = [shlex.split(part) for run in runs for part in run.split("&&")]
    return [c for c in commands if c[:2] == ["uv", "sync"]]


def test_run_queue_and_pools_match_the_instance():
    values, instance = _values(), _instance()
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert _snake_keys(concurrency["pools"]) == instance["concurrency"]["pools"]
    assert _snake_keys(concurrency["runs"]) == instance["concurrency"]["runs"]
    queued = values["dagsterDaemon"]["runCoordinator"]
    assert queued["enabled"] is True and queued["type"] == "QueuedRunCoordinator"
    assert _snake_keys(queued["config"]["queuedRunCoordinator"]) == instance["run_queue"]


def test_run_monitoring_and_retries_match_the_instance():
    daemon, instance = _values()["dagsterDaemon"], _instance()
    monitoring = _snake_keys(daemon["runMonitoring"])
    # the one addition on Kubernetes: the project's liveness locks are files on each pod, so the daemon frees the
    # pool slots a dead run pod kept (values.yaml says why)
    assert monitoring.pop("free_slots_after_run_end_seconds") > 0
    assert monitoring == instance["run_monitoring"]
    assert _snake_keys(daemon["runRetries"]) == instance["run_retries"]


def test_telemetry_nux_and_postgres_driver_match_the_instance():
    values, instance = _values(), _instance()
    assert values["telemetry"] == instance["telemetry"]
    assert values["additionalInstanceConfig"] == {"nux": instance["nux"]}
    assert values["postgresql"]["enabled"] is False
    assert (
        values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    # the password comes from a secret we make, never from these values
    assert (
        values["generatePostgresqlPasswordSecret"] is False
        and values["postgresql"]["postgresqlPassword"] == ""
    )


def test_dockerfile_uv_is_the_bootstrap_pin():
    pin = re.compile(r"uv==([0-9][0-9.]*)")
    bootstrap = pin.findall((ROOT / "scripts" / "bootstrap").read_text())
    docker = pin.findall(DOCKERFILE.read_text())
    assert len(set(bootstrap)) == 1 and set(docker) == set(bootstrap)


def test_dockerfile_installs_from_the_lock_without_dev_tools():
    pyproject = _pyproject()
    commands = _uv_sync_commands()
    assert len(commands) == 2  # dependencies (cached layer), then the project
    for command in commands:
        assert {"--frozen", "--no-dev"} <= set(command)
        extras = [command[i + 1] for i, arg in enumerate(command) if arg == "--extra"]
        groups = [command[i + 1] for i, arg in enumerate(command) if arg == "--group"]
        # the DuckLake wheels, and dagster-gcp for the chart's GCSComputeLogManager in every run pod
        assert extras == ["ducklake"] and set(extras) <= set(pyproject["project"]["optional-dependencies"])
        assert groups == ["compat"] and "dagster-gcp" in " ".join(pyproject["dependency-groups"]["compat"])


def test_code_location_module_and_port_agree():
    module = _pyproject()["tool"]["dagster"]["module_name"]
    instructions = _dockerfile_instructions()
    cmd = yaml.safe_load(next(args for op, args in instructions if op == "CMD"))  # exec form is a JSON list
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-m") + 1] == module
    port = cmd[cmd.index("-p") + 1]
    assert ("EXPOSE", port) in instructions
    assert not any(op == "ENTRYPOINT" for op, _ in instructions)  # the chart's args must replace CMD whole

    deployment = _deployment()
    assert deployment["port"] == int(port)
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == module


def test_image_user_is_the_one_the_chart_runs_as():
    user = next(args for op, args in _dockerfile_instructions() if op == "USER")
    context = _deployment()["podSecurityContext"]
    assert context["runAsNonRoot"] is True and str(context["runAsUser"]) == user


def test_environment_names_are_ones_the_project_reads():
    settings = (ROOT / "leap_orchestration" / "settings.py").read_text()
    names = [e["name"] for e in _deployment()["env"]]
    assert names and all(f'"{name}"' in settings for name in names)
