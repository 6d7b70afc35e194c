"""Fault injection over HTTP, seen from the service's kind of client (httpx + aiohttp)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sandbox.conftest import NUMBER_ID, Launch


async def test_a_5xx_burst_of_n_then_normal(launch: Launch) -> None:
    api = await launch(
        {"faults": {"server_errors": {"next": 3, "status": 502, "code": "whatsapp_upstream_error"}}}
    )
    statuses = [(await api.send(f"+6281100000{n}")).status_code for n in range(5)]
    assert statuses == [502, 502, 502, 200, 200]
    audit = await api.audit()
    assert audit["totals"]["server_errors_injected"] == 3
    assert audit["totals"]["accepted_sends"] == 2


async def test_5xx_by_probability_and_switched_off_at_run_time(launch: Launch) -> None:
    api = await launch({"faults": {"server_errors": {"probability": 1.0}}})
    response = await api.send()
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"
    await api.patch({"faults": {"server_errors": {"probability": 0}}})
    assert (await api.send()).status_code == 200


async def test_faults_hit_only_sends_unless_scope_is_all(launch: Launch) -> None:
    api = await launch({"faults": {"server_errors": {"probability": 1.0}}})
    assert (await api.get("/accounts")).status_code == 200
    await api.patch({"faults": {"scope": "all"}})
    assert (await api.get("/accounts")).status_code == 503
    assert (await api.client.get(api.sandbox.control_url + "/audit")).status_code == 200


async def test_latency_delays_the_answer(launch: Launch) -> None:
    api = await launch(
        {"faults": {"latency": {"fixed_ms": 200, "jitter": "uniform", "jitter_ms": 50}}}
    )
    started = time.monotonic()
    assert (await api.send()).status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_a_late_answer_times_out_and_the_retry_replays(launch: Launch) -> None:
    api = await launch({"faults": {"late_answers": {"next": 1, "delay_seconds": 2.0}}})
    with pytest.raises(httpx.TimeoutException):
        await api.send(key="late", wait_seconds=0.3)
    retried = await api.send(key="late")
    assert retried.status_code == 200
    assert retried.headers["idempotent-replayed"] == "true"
    audit = await api.audit()
    assert audit["totals"]["accepted_sends"] == 1
    assert audit["totals"]["late_answers"] == 1
    listed = await api.messages()
    assert [m["idempotency_key"] for m in listed["data"]] == ["late"]


async def test_a_dropped_connection_is_a_transport_error(launch: Launch) -> None:
    api = await launch({"faults": {"dropped_connections": {"next": 1}}})
    with pytest.raises(httpx.TransportError):
        await api.send(key="drop")
    retried = await api.send(key="drop")
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers  # nothing was processed
    assert (await api.audit())["totals"]["dropped_connections"] == 1


async def test_a_drop_after_processing_then_the_retry_replays(launch: Launch) -> None:
    api = await launch({"faults": {"dropped_connections": {"next": 1, "after_processing": True}}})
    with pytest.raises(httpx.TransportError):
        await api.send(key="drop")
    retried = await api.send(key="drop")
    assert retried.status_code == 200
    assert retried.headers["idempotent-replayed"] == "true"
    assert (await api.audit())["totals"]["accepted_sends"] == 1


async def test_the_default_httpx_transport_also_sees_the_drop(launch: Launch) -> None:
    api = await launch({"faults": {"dropped_connections": {"probability": 1.0}}})
    async with httpx.AsyncClient() as plain:
        with pytest.raises(httpx.RemoteProtocolError):
            await plain.post(
                f"{api.sandbox.api_url}/{NUMBER_ID}/messages", json={}, headers=api.auth
            )


async def test_config_shows_what_is_left_of_a_countdown(launch: Launch) -> None:
    api = await launch(
        {"faults": {"server_errors": {"next": 3}, "late_answers": {"next": 2, "delay_seconds": 0}}}
    )
    await api.send()
    shown = (await api.client.get(api.sandbox.control_url + "/config")).json()["data"]
    assert shown["faults"]["server_errors"]["next"] == 2
    # Patching another fault's countdown leaves this one counting down.
    await api.patch({"faults": {"dropped_connections": {"next": 0}}})
    shown = (await api.client.get(api.sandbox.control_url + "/config")).json()["data"]
    assert shown["faults"]["server_errors"]["next"] == 2
