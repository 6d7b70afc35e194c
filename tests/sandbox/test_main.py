"""`python -m sandbox` as a real process: starts with its defaults, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from runtime import defaults


def test_python_m_sandbox_serves_and_stops_cleanly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SANDBOX_PORT": str(port), "SANDBOX_WEBHOOK_URL": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.05)
        assert health.status_code == 200
        accounts = httpx.get(
            f"http://127.0.0.1:{port}/v1/accounts",
            headers={"Authorization": f"Bearer {defaults.KIRIM_API_KEY}"},
        )
        assert accounts.json()["data"][0]["phone_number_id"] == defaults.DEFAULT_PHONE_NUMBER_ID
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "sandbox_stopped" in stderr


def test_a_bad_variable_stops_the_start_with_its_name() -> None:
    env = {**os.environ, "SANDBOX_TIME_SCALE": "fast"}
    result = subprocess.run(
        [sys.executable, "-m", "sandbox"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SANDBOX_TIME_SCALE" in result.stderr
