"""Bad configuration: one line on stderr naming the variable, exit 2, nothing opened."""

from __future__ import annotations

import pytest

from devstack.procs import free_port
from runtime import defaults
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.entrypoints.services import SERVICES, base_env, listeners, run_once

BAD_VALUES = [
    ("consumer", "INTAKE_WORKERS", "0"),
    ("consumer", "CONSUMER_METRICS_PORT", "metrics"),
    ("consumer", "DISPATCH_CONCURRENCY", "250:five"),
    ("webhook_bridge", "WEBHOOK_BRIDGE_PORT", "70000"),
    ("webhook_bridge", "WEBHOOK_PATH", "kirim-hook"),
    ("projector", "PROJECTOR_BATCH_SIZE", "many"),
    ("projector", "PROJECTOR_METRICS_PORT", "-1"),
    ("sandbox", "SANDBOX_PORT", "x"),
    ("sandbox", "SANDBOX_PLAN", "platinum"),
    ("console", "CONSOLE_PORT", "web"),
    ("console", "CONSOLE_TOKEN", "too-short"),
    ("console", "CONSOLE_USERS", "ana:admin:0123456789abcdef0"),
    ("console", "CONSOLE_SECRET", "not-32-bytes"),
]


def assert_one_line_naming(stderr_lines: list[str], service: str, variable: str) -> None:
    assert len(stderr_lines) == 1, stderr_lines
    assert stderr_lines[0].startswith(f"{service}: ")
    assert variable in stderr_lines[0]
    assert "Traceback" not in stderr_lines[0]


@pytest.mark.parametrize(("name", "variable", "value"), BAD_VALUES)
async def test_a_bad_value_exits_2_with_one_line_naming_it(
    name: str, variable: str, value: str
) -> None:
    service = SERVICES[name]
    finished = await run_once(service.module, base_env(**{**service.required, variable: value}))
    assert finished.returncode == 2
    assert_one_line_naming(finished.stderr_lines(), name, variable)
    assert finished.stdout == ""


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_a_port_in_use_exits_2_before_anything_connects(name: str) -> None:
    service = SERVICES[name]
    with listeners(3) as (taken, kafka, postgres):
        env = base_env(
            **service.required,
            **{service.port_variable: str(taken.port)},
            KAFKA_BOOTSTRAP_SERVERS=kafka.address,
            DATABASE_URL=f"postgresql://broadcast@{postgres.address}/broadcast",
            # The consumer's sender check would call the API first; none to check here.
            KIRIM_BASE_URL=f"http://{postgres.address}/v1",
        )
        finished = await run_once(service.module, env)
        assert finished.returncode == 2
        # One line: no "Unclosed AIOKafka..." or "Unclosed client session" after it.
        assert_one_line_naming(finished.stderr_lines(), name, service.port_variable)
        assert "already in use" in finished.stderr
        assert kafka.connections() == postgres.connections() == 0


async def test_the_consumer_refuses_a_sender_the_api_does_not_list() -> None:
    unknown = "999000111"
    async with running_sandbox(SandboxSettings(port=0)) as sandbox:
        with listeners(2) as (kafka, postgres):
            env = base_env(
                KIRIM_BASE_URL=sandbox.api_url,
                KIRIM_API_KEY=defaults.KIRIM_API_KEY,
                DISPATCH_SENDERS=f"{defaults.DEFAULT_PHONE_NUMBER_ID},{unknown}",
                CONSUMER_METRICS_PORT=str(free_port()),
                KAFKA_BOOTSTRAP_SERVERS=kafka.address,
                DATABASE_URL=f"postgresql://broadcast@{postgres.address}/broadcast",
            )
            finished = await run_once("consumer", env)
            assert finished.returncode == 2
            assert_one_line_naming(finished.stderr_lines(), "consumer", "DISPATCH_SENDERS")
            assert unknown in finished.stderr
            assert defaults.DEFAULT_PHONE_NUMBER_ID not in finished.stderr
            assert kafka.connections() == postgres.connections() == 0
