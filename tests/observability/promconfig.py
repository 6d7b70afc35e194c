"""Render a local variant of compose/prometheus/prometheus.yml (127.0.0.1 ports, fast scrapes).

The committed file names compose services (`consumer:9101`, ...). The local variant
swaps each target for a loopback address and shortens the intervals; everything else
(job names, rule files) stays as committed, so the test exercises the real file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.observability.catalogue import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "compose" / "prometheus"
CONFIG_PATH = PROMETHEUS_DIR / "prometheus.yml"
RULES_PATH = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS_PATH = PROMETHEUS_DIR / "alerts.test.yml"

# job name -> the target the committed file gives it.
COMPOSE_TARGETS: Mapping[str, str] = {
    "consumer": "consumer:9101",
    "webhook_bridge": "webhook-bridge:8081",
    "projector": "projector:9102",
    "sandbox": "sandbox:8090",
    "prometheus": "localhost:9090",
}


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise ValueError(f"expected {old!r} once in {CONFIG_PATH.name}, found it {count} times")
    return text.replace(old, new)


def local_config(ports: Mapping[str, int], *, interval: str = "1s", text: str | None = None) -> str:
    """The committed config with every job scraping 127.0.0.1:<ports[job]> every `interval`."""
    config = CONFIG_PATH.read_text() if text is None else text
    if set(ports) != set(COMPOSE_TARGETS):
        raise ValueError(f"need a port for each job: {sorted(COMPOSE_TARGETS)}")
    for job, target in COMPOSE_TARGETS.items():
        config = _replace_once(config, f"- {target}\n", f"- 127.0.0.1:{ports[job]}\n")
    config = _replace_once(config, "scrape_interval: 15s", f"scrape_interval: {interval}")
    return _replace_once(config, "evaluation_interval: 15s", f"evaluation_interval: {interval}")


def write_local_config(directory: Path, ports: Mapping[str, int], *, interval: str = "1s") -> Path:
    """Write the local config and the committed rules side by side; return the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RULES_PATH.name).write_text(RULES_PATH.read_text())
    path = directory / "prometheus.yml"
    path.write_text(local_config(ports, interval=interval))
    return path
