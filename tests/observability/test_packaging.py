"""The Dockerfile and the compose file agree with the code, as far as this machine can check.

No Docker engine runs here, and the project has no YAML parser: these checks read the
files as text (each service's block, its variables, its mounts) and compare them with
the services' settings, pyproject.toml and the Prometheus config. `docker compose
config` runs too when a compose CLI is installed. docs/deploy.md says what else was
checked by hand.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest

from tests.observability.catalogue import REPO_ROOT
from tests.observability.dashboard import GRAFANA_DIR
from tests.observability.promconfig import CONFIG_PATH

COMPOSE_DIR = REPO_ROOT / "compose"
COMPOSE_PATH = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (REPO_ROOT / ".dockerignore").read_text()
SERVICE_SOURCES = ("runtime", "consumer", "webhook_bridge", "projector", "sandbox", "console")

# compose service -> (python module, the variable that sets its HTTP port, the port)
SERVICES = {
    "consumer": ("consumer", "CONSUMER_METRICS_PORT", 9101),
    "webhook-bridge": ("webhook_bridge", "WEBHOOK_BRIDGE_PORT", 8081),
    "projector": ("projector", "PROJECTOR_METRICS_PORT", 9102),
    "sandbox": ("sandbox", "SANDBOX_PORT", 8090),
    "console": ("console", "CONSOLE_PORT", 8095),
}
# The console serves /metrics too, but only its HTTP figures: Prometheus scrapes the four.
SCRAPED = ("consumer", "webhook-bridge", "projector", "sandbox")


def _wheel_packages() -> list[str]:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages: list[str] = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def _compose_blocks() -> dict[str, str]:
    """Top-level keys under `services:` -> their indented text."""
    text = COMPOSE_PATH.read_text()
    services = text[text.index("\nservices:\n") : text.index("\nvolumes:\n")]
    parts = re.split(r"^  ([a-z][a-z0-9-]*):\n", services, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _read_by_services(name: str) -> bool:
    """Whether some service's settings read the environment variable `name`."""
    for package in SERVICE_SOURCES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            if f'"{name}"' in path.read_text():
                return True
    return False


def test_dockerfile_installs_every_package_of_the_wheel() -> None:
    for package in _wheel_packages():
        assert f"COPY {package} ./{package}\n" in DOCKERFILE, package
        assert f"!{package}/\n" in DOCKERIGNORE, package


def test_dockerfile_shape() -> None:
    assert re.search(r"^FROM \S+ AS builder$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^FROM \S+ AS runtime$", DOCKERFILE, re.MULTILINE)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE
    assert "UV_FROZEN=1" in DOCKERFILE
    assert "uv sync --no-dev" in DOCKERFILE
    assert "COPY --from=builder /opt/venv /opt/venv" in DOCKERFILE
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert "HEALTHCHECK" in DOCKERFILE
    assert "/readyz" in DOCKERFILE


def test_dockerfile_uv_is_the_version_setup_installs() -> None:
    setup = (REPO_ROOT / "scripts" / "setup").read_text()
    version = re.search(r"^UV_VERSION=(\S+)$", setup, re.MULTILINE)
    assert version is not None
    assert f"FROM ghcr.io/astral-sh/uv:{version.group(1)} AS uv" in DOCKERFILE


def test_dockerfile_bind_variables_exist() -> None:
    binds = re.findall(r"([A-Z_]+_HOST)=0\.0\.0\.0", DOCKERFILE)
    assert len(binds) == 5
    for name in binds:
        assert _read_by_services(name), f"no service reads {name}"


def test_compose_runs_each_service_on_its_port() -> None:
    blocks = _compose_blocks()
    for service, (module, port_variable, port) in SERVICES.items():
        block = blocks[service]
        assert f'command: ["python", "-m", "{module}"]' in block, service
        assert f'{port_variable}: "{port}"' in block, service
        assert f'HEALTH_PORT: "{port}"' in block, service
        assert "<<: *broadcast-service" in block, service
        assert "<<: *broadcast-env" in block, service
    for name in ("kafka", "postgres", "prometheus", "grafana"):
        assert name in blocks, name
    assert "image: apache/kafka:4.1.1" in blocks["kafka"]
    assert "KAFKA_PROCESS_ROLES: broker,controller" in blocks["kafka"]
    assert "image: postgres:15" in blocks["postgres"]


def test_prometheus_scrapes_the_compose_services() -> None:
    targets = re.findall(r"^\s+- ([a-z-]+):(\d+)$", CONFIG_PATH.read_text(), re.MULTILINE)
    scraped = {host: int(port) for host, port in targets if host != "localhost"}
    assert scraped == {service: SERVICES[service][2] for service in SCRAPED}


def test_compose_variables_are_read_by_the_services() -> None:
    text = COMPOSE_PATH.read_text()
    shared = text[text.index("x-broadcast-env:") : text.index("x-broadcast-service:")]
    blocks = _compose_blocks()
    names = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):", shared, re.MULTILINE))
    for service in SERVICES:
        names |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):", blocks[service], re.MULTILINE))
    names.discard("HEALTH_PORT")  # read by the image's health check, not by a service
    assert "DATABASE_URL" in names
    unread = sorted(name for name in names if not _read_by_services(name))
    assert not unread, f"no service reads {unread}"


def test_compose_mounts_exist_and_match_grafana_provisioning() -> None:
    text = COMPOSE_PATH.read_text()
    mounts = re.findall(r"^\s+- (\./[^:]+):(/[^:]+):ro$", text, re.MULTILINE)
    assert mounts
    for source, _ in mounts:
        assert (COMPOSE_DIR / source).exists(), source
    targets = dict(mounts)
    assert targets["./grafana/dashboards"] == "/var/lib/grafana/dashboards"
    assert targets["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert targets["./prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"
    provider = (GRAFANA_DIR / "provisioning" / "dashboards" / "broadcast.yml").read_text()
    assert f"path: {targets['./grafana/dashboards']}" in provider


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_config_validates() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI here (the docker CLI has no compose plugin)")
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_PATH), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
