"""`broadcast demo` end to end: a child process against the session's Kafka and PostgreSQL.

The demo runs as a user runs it (`python -m cli demo`), with a small audience and a
short quota window, on fresh topics, groups and a database of its own. Every process
it starts inherits a marker variable, so the test can tell afterwards that none of
them is left running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from cli.demo import (
    LOW_TIER,
    LOW_TIER_SENDER,
    DemoOptions,
    sample_audience,
    sandbox_config,
    service_environment,
)
from consumer.intake.phone import normalize_phone
from devstack.postgres import PostgresServer
from sandbox.settings import SandboxSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = "WA_BROADCAST_DEMO_TEST"


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (zombies have an empty one)."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ:
            found.append(int(entry.name))
    return found


async def _run_demo(argv: list[str], env: dict[str, str], seconds: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "demo",
        *argv,
        env=env,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        # SIGTERM is the demo's Ctrl-C: it stops its services before it exits.
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 30)
        pytest.fail(f"the demo took over {seconds:.0f}s:\n{out.decode()}\n{err.decode()}")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _environment(run: str) -> dict[str, str]:
    return {
        **os.environ,
        "REQUESTS_TOPIC": f"demo-requests-{run}",
        "REQUESTS_DLQ_TOPIC": f"demo-requests-dlq-{run}",
        "STATUS_TOPIC": f"demo-status-{run}",
        "CONSUMER_GROUP": f"demo-consumer-{run}",
        "PROJECTOR_GROUP": f"demo-projector-{run}",
        MARKER: run,
    }


def _logs(log_dir: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
        for path in sorted(log_dir.glob("*.log"))
    )


@pytest.mark.timeout(180)
async def test_the_demo_runs_end_to_end_and_leaves_nothing_running(
    kafka_bootstrap: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    database = f"demo_test_{run}"
    await asyncio.to_thread(postgres.ensure_database, database)
    log_dir = tmp_path / "logs"
    argv = [
        "--recipients=300",
        # Over the 250 tier: the second quota window shows as deferral.
        "--low-tier-recipients=300",
        "--window-seconds=5",
        f"--bootstrap-servers={kafka_bootstrap}",
        f"--database-url={postgres.url(database)}",
        f"--log-dir={log_dir}",
        "--max-seconds=60",
    ]
    code, out, err = await _run_demo(argv, _environment(run), 90)

    assert code == 0, f"{out}\n{err}\n{_logs(log_dir)}"
    for label in ("10K-tier number", f"{LOW_TIER}-tier number"):
        assert f"== flash sale, {label}: finished" in out
    # The final progress table of each campaign, and the failure buckets.
    assert out.count("  status     count     pct") == 2
    assert "console     http://127.0.0.1:" in out
    assert "failures by code" in out or "no failures" in out
    assert "pending: deferred_quota" in out
    assert f"{LOW_TIER_SENDER}: tier 250, at most 250 unique recipients" in out
    assert "  accepted sends " in out
    assert (
        "stopped: sandbox exit 0, webhook_bridge exit 0, projector exit 0, consumer exit 0, "
        "console exit 0" in out
    )
    assert {p.name for p in log_dir.glob("*.log")} == {
        "sandbox.log",
        "webhook_bridge.log",
        "projector.log",
        "consumer.log",
        "console.log",
    }
    assert _processes_with(run) == []


@pytest.mark.timeout(120)
async def test_a_service_that_cannot_start_is_named_with_its_log(
    kafka_bootstrap: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    database = f"demo_test_{run}"
    await asyncio.to_thread(postgres.ensure_database, database)
    env = {**_environment(run), "CONSUMER_DB_POOL_SIZE": "1"}  # refused at start
    argv = [
        f"--bootstrap-servers={kafka_bootstrap}",
        f"--database-url={postgres.url(database)}",
        f"--log-dir={tmp_path}",
    ]
    code, out, err = await _run_demo(argv, env, 90)

    assert code == 1, f"{out}\n{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("broadcast: demo: consumer exited with code")
    assert lines[0].endswith(f"see {tmp_path / 'consumer.log'}")
    assert "stopped: sandbox exit 0" in out
    assert _processes_with(run) == []


def test_the_sample_audience_has_a_realistic_mix() -> None:
    rows = sample_audience(10_000, seed=1)
    assert rows == sample_audience(10_000, seed=1)
    phones = [normalize_phone(phone) for phone, _, _ in rows]
    valid = [phone for phone in phones if phone is not None]
    assert all(phone.startswith("+628") for phone in valid)
    assert 0.001 < phones.count(None) / len(rows) < 0.006
    assert 0.002 < 1 - len(set(valid)) / len(valid) < 0.01
    assert 0.002 < sum(1 for _, opted_in, _ in rows if not opted_in) / len(rows) < 0.01
    assert any(" " in phone for phone, _, _ in rows)


def test_the_sandbox_and_the_dispatcher_agree_on_the_window() -> None:
    options = DemoOptions(window_seconds=7, write_per_minute=1_234)
    env = service_environment(
        {"PATH": "/usr/bin"},
        bootstrap_servers="127.0.0.1:1",
        database_url="postgresql://x@127.0.0.1:1/x",
        ports={
            "sandbox": 1001,
            "webhook_bridge": 1002,
            "projector": 1003,
            "consumer": 1004,
            "console": 1005,
        },
        secret="whsec_test",
        options=options,
        console_token="demo-test-console-token",
    )
    sandbox = SandboxSettings.from_env(env)
    config = sandbox.config
    assert (sandbox.port, env["KIRIM_BASE_URL"]) == (1001, "http://127.0.0.1:1001/v1")
    assert config.quota.window_seconds == 7 == int(env["QUOTA_WINDOW_SECONDS"])
    assert config.webhooks.url == "http://127.0.0.1:1002/kirim-hook"
    assert config.webhooks.secrets == ("whsec_test",)
    assert config.rate_limits.write_per_minute == 1_234
    assert (env["CONSOLE_PORT"], env["CONSOLE_TOKEN"]) == ("1005", "demo-test-console-token")
    assert config.accounts[LOW_TIER_SENDER].messaging_tier == LOW_TIER
    assert sandbox_config(options)["quota"]["window_seconds"] == 7
