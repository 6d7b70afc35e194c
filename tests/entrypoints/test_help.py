"""`python -m <service> --help`: usage, every variable `from_env` reads, exit 0, nothing opened."""

from __future__ import annotations

import ast
import re

import pytest

from runtime import defaults
from runtime.usage import masked, recorded
from tests.children import REPO_ROOT
from tests.entrypoints.services import SERVICES, Service, base_env, listeners, run_once

_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# `--help` metadata names variables too; reading them is not what is checked here.
_HELP_ONLY = {"help_defaults", "_HELP_PATHS"}
_ROW = re.compile(r"^  ([A-Z][A-Z0-9_]+) +\[default: (.*)\]$", re.MULTILINE)


def names_in_source(service: Service) -> set[str]:
    """Every string constant shaped like a variable name in the settings' source (an
    independent check of the recorder: a name read any other way shows up here)."""
    names: set[str] = set()
    for relative in service.settings_files:
        tree = ast.parse((REPO_ROOT / relative).read_text())
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef) and statement.name in _HELP_ONLY:
                continue
            targets = (
                statement.targets
                if isinstance(statement, ast.Assign)
                else [statement.target]
                if isinstance(statement, ast.AnnAssign)
                else []
            )
            if any(isinstance(t, ast.Name) and t.id in _HELP_ONLY for t in targets):
                continue
            for node in ast.walk(statement):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and _ENV_NAME.fullmatch(node.value)
                ):
                    names.add(node.value)
    return names


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_help_lists_every_variable_and_opens_nothing(name: str, flag: str) -> None:
    service = SERVICES[name]
    with listeners(3) as (own_port, kafka, postgres):
        env = base_env(
            # Taken: a service that tried to listen would exit 2, not 0.
            **{service.port_variable: str(own_port.port)},
            KAFKA_BOOTSTRAP_SERVERS=kafka.address,
            DATABASE_URL=f"postgresql://broadcast@{postgres.address}/broadcast",
            KIRIM_BASE_URL=f"http://{postgres.address}/v1",
            SANDBOX_WEBHOOK_URL=f"http://{kafka.address}/kirim-hook",
        )
        finished = await run_once(service.module, env, flag)
        assert (finished.returncode, finished.stderr) == (0, "")
        assert finished.seconds < 10
        assert kafka.connections() == postgres.connections() == own_port.connections() == 0

    out = finished.stdout
    assert out.startswith(f"usage: python -m {service.module}")
    assert "Exit status:" in out
    listed = dict(_ROW.findall(out))
    variables, _ = recorded(service.from_env)
    assert list(listed) == [variable.name for variable in variables]
    assert set(listed) == names_in_source(service)
    assert service.port_variable in listed
    # Secrets are masked, whatever the environment holds.
    for secret in (defaults.KIRIM_API_KEY, defaults.KIRIM_WEBHOOK_SECRETS):
        assert secret not in out
    for secret_name in ("KIRIM_API_KEY", "KIRIM_WEBHOOK_SECRETS"):
        if secret_name in listed:
            assert "****" in listed[secret_name]


async def test_help_shows_plain_defaults_and_masks_a_database_password() -> None:
    finished = await run_once("consumer", base_env(), "--help")
    listed = dict(_ROW.findall(finished.stdout))
    assert listed["KAFKA_BOOTSTRAP_SERVERS"] == defaults.KAFKA_BOOTSTRAP_SERVERS
    assert listed["CONSUMER_METRICS_PORT"] == str(defaults.CONSUMER_METRICS_PORT)
    assert listed["INTAKE_ENABLED"] == "true"
    assert listed["DISPATCH_CONCURRENCY"] == "250:5,2000:10,10000:20,unlimited:50"
    assert (
        masked("DATABASE_URL", "postgresql://broadcast:hunter2@db:5432/broadcast")
        == "postgresql://broadcast:****@db:5432/broadcast"
    )


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_an_unknown_argument_prints_the_usage_on_stderr_and_exits_2(name: str) -> None:
    finished = await run_once(SERVICES[name].module, base_env(), "--no-such-flag")
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.startswith("usage: python -m ")
    assert "--no-such-flag" in finished.stderr
