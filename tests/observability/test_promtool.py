"""`promtool` accepts the committed Prometheus config and rules, and the rules' unit tests pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.observability.promconfig import (
    COMPOSE_TARGETS,
    CONFIG_PATH,
    PROMETHEUS_DIR,
    RULE_TESTS_PATH,
    RULES_PATH,
    write_local_config,
)

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (scripts/setup installs Debian's prometheus as root: "
    "apt-get install -y prometheus)",
)


def promtool(*args: str | Path) -> str:
    result = subprocess.run(
        ["promtool", *map(str, args)],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_check_config() -> None:
    output = promtool("check", "config", CONFIG_PATH)
    assert "SUCCESS" in output


def test_check_rules() -> None:
    output = promtool("check", "rules", RULES_PATH)
    assert "SUCCESS" in output


def test_rule_unit_tests_pass() -> None:
    output = promtool("test", "rules", RULE_TESTS_PATH)
    assert "SUCCESS" in output


def test_local_variant_passes_check_config(tmp_path: Path) -> None:
    ports = {job: 20_000 + n for n, job in enumerate(COMPOSE_TARGETS)}
    config = write_local_config(tmp_path, ports)
    assert "SUCCESS" in promtool("check", "config", config)
