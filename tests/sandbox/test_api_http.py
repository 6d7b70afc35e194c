"""The API's endpoints, answers and errors over real HTTP on loopback."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from sandbox.clock import ManualClock
from sandbox.settings import SandboxSettings
from sandbox.testing import running_sandbox
from tests.sandbox.conftest import API_KEY, NUMBER_ID, Api, Launch, template_body

MSG_ID = re.compile(r"^msg_[0-9A-HJKMNP-TV-Z]{26}$")
REQ_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{24}$")
FAST = {"time_scale": 1000.0}


def assert_error(
    response: httpx.Response, status: int, code: str, param: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    error = body["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    assert REQ_ID.match(error["request_id"])
    assert error["type"]
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in response.text


async def test_health_needs_no_key(api: Api) -> None:
    response = await api.client.get(api.sandbox.api_url + "/health")
    assert response.status_code == 200
    assert response.json()["data"] == {"status": "ok"}
    assert REQ_ID.match(response.headers["x-request-id"])


async def test_accounts_lists_the_default_number(api: Api) -> None:
    response = await api.get("/accounts", status="connected")
    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False
    assert body["next_cursor"] is None
    assert body["request_id"] == response.headers["x-request-id"]
    (account,) = body["data"]
    assert account["phone_number_id"] == NUMBER_ID
    assert account["status"] == "connected"
    assert account["messaging_tier"] == 1000
    assert account["quality_rating"] == "GREEN"


@pytest.mark.parametrize(
    ("encoding", "tier", "shown"),
    [
        ("int", 1000, 1000),
        ("string", 1000, "1000"),
        ("label", 1000, "TIER_1K"),
        ("label", "unlimited", "TIER_UNLIMITED"),
        ("string", "unlimited", "unlimited"),
    ],
)
async def test_tier_encodings(launch: Launch, encoding: str, tier: Any, shown: Any) -> None:
    api = await launch(
        {"tier_encoding": encoding, "accounts": {NUMBER_ID: {"messaging_tier": tier}}}
    )
    response = await api.get("/accounts")
    assert response.json()["data"][0]["messaging_tier"] == shown


async def test_accounts_filter_by_status(launch: Launch) -> None:
    api = await launch(
        {
            "accounts": {
                NUMBER_ID: {},
                "2222222": {"phone_number": "+6281100000002", "status": "disconnected"},
            }
        }
    )
    connected = (await api.get("/accounts", status="connected")).json()["data"]
    everyone = (await api.get("/accounts", status="all")).json()["data"]
    assert [a["phone_number_id"] for a in connected] == [NUMBER_ID]
    assert sorted(a["phone_number_id"] for a in everyone) == sorted([NUMBER_ID, "2222222"])
    assert_error(await api.get("/accounts", status="some"), 400, "invalid_field_value", "status")


async def test_me_reports_the_rate_plan(api: Api) -> None:
    body = (await api.get("/me")).json()
    assert body["data"]["rate_limits"] == {
        "tier": "pro",
        "write_per_minute": 600,
        "read_per_minute": 6000,
    }


async def test_a_send_is_accepted_pending(api: Api) -> None:
    response = await api.send(key="k1")
    assert response.status_code == 200
    body = response.json()
    data = body["data"]
    assert MSG_ID.match(data["id"])
    assert (data["object"], data["status"], data["provider_id"]) == ("message", "pending", None)
    assert data["to"] == "+628111222333"
    assert body["request_id"] == response.headers["x-request-id"]
    for header in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert response.headers[header].isdigit()
    assert "idempotent-replayed" not in response.headers


async def test_accept_status_is_configurable(launch: Launch) -> None:
    api = await launch({"accept_status": 202})
    assert (await api.send()).status_code == 202


async def test_a_message_goes_sent_delivered_read(http: httpx.AsyncClient) -> None:
    clock = ManualClock()
    async with running_sandbox(SandboxSettings(port=0), clock) as sandbox:
        api = Api(sandbox, http)
        message_id = (await api.send()).json()["data"]["id"]
        seen = []
        # Default delays: sent 0.2 s after the accept, delivered 0.5 s later, read 1 s later.
        for step in (0.1, 0.2, 0.5, 1.0, 100.0):
            seen.append(await api.message(message_id))
            clock.advance(step)
        assert [m["status"] for m in seen] == ["pending", "pending", "sent", "delivered", "read"]
        assert seen[0]["provider_id"] is None
        assert seen[2]["provider_id"].startswith("wamid.")
        assert seen[4]["provider_id"] == seen[2]["provider_id"]
        assert seen[4]["error"] is None


async def test_a_failed_message_shows_code_and_provider_code(launch: Launch) -> None:
    api = await launch({**FAST, "outcomes": {"forced": {"+62800": "recipient_not_on_whatsapp"}}})
    message_id = (await api.send("+628001112222")).json()["data"]["id"]
    failed = await api.wait_status(message_id, "failed")
    assert failed["error"]["code"] == "recipient_not_on_whatsapp"
    assert failed["error"]["provider_code"] == 131026


async def test_unknown_message_and_other_numbers_message_are_404(launch: Launch) -> None:
    api = await launch({"accounts": {NUMBER_ID: {}, "2222222": {"phone_number": "+6281100000002"}}})
    message_id = (await api.send()).json()["data"]["id"]
    assert_error(await api.get(f"/{NUMBER_ID}/messages/msg_NOPE"), 404, "resource_not_found")
    assert_error(await api.get(f"/2222222/messages/{message_id}"), 404, "resource_not_found")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "invalid_api_key"),
        ("Bearer wrong", "invalid_api_key"),
        (f"Basic {API_KEY}", "invalid_api_key"),
        ("Bearer kdv_live_expiredexpiredexpired00", "expired_api_key"),
    ],
)
async def test_bad_keys_are_401(launch: Launch, authorization: str | None, code: str) -> None:
    api = await launch({"expired_api_keys": ["kdv_live_expiredexpiredexpired00"]})
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.client.post(
        f"{api.sandbox.api_url}/{NUMBER_ID}/messages", json=template_body(), headers=headers
    )
    assert_error(response, 401, code)
    assert response.json()["error"]["type"] == "authentication_error"
    assert API_KEY not in response.text


async def test_unknown_forbidden_and_disconnected_numbers(launch: Launch) -> None:
    api = await launch(
        {
            "accounts": {
                NUMBER_ID: {"status": "disconnected"},
                "3333333": {"phone_number": "+6281100000003", "forbidden": True},
            }
        }
    )
    assert_error(
        await api.send(number_id="999999999"), 404, "resource_not_found", "phone_number_id"
    )
    assert_error(await api.send(number_id="3333333"), 403, "phone_number_forbidden")
    assert_error(await api.send(), 422, "account_not_connected")


SEND_ERRORS = [
    ({"messaging_product": "whatsapp", "type": "template"}, "missing_required_field", "to"),
    ({**template_body(), "to": "628111222333"}, "invalid_phone_number", "to"),
    ({**template_body(), "messaging_product": "sms"}, "invalid_field_value", "messaging_product"),
    (template_body(name="no_such_template"), "invalid_template_name", "template.name"),
]


@pytest.mark.parametrize(("body", "code", "param"), SEND_ERRORS)
async def test_invalid_sends_are_400(api: Api, body: dict[str, Any], code: str, param: str) -> None:
    assert_error(await api.send(body=body), 400, code, param)


async def test_param_count_mismatch_async_by_default_sync_as_option(launch: Launch) -> None:
    api = await launch(FAST)
    accepted = await api.send(body=template_body(params=("a", "b")))
    assert accepted.status_code == 200
    failed = await api.wait_status(accepted.json()["data"]["id"], "failed")
    assert failed["error"]["code"] == "template_param_count_mismatch"
    strict = await launch({"param_mismatch": "sync"})
    assert_error(
        await strict.send(body=template_body(params=("a", "b"))),
        400,
        "invalid_field_value",
        "template.components",
    )


async def test_paused_template_fails_asynchronously(launch: Launch) -> None:
    api = await launch({**FAST, "templates": {"promo_flash_sale": {"status": "paused"}}})
    response = await api.send()
    assert response.status_code == 200
    failed = await api.wait_status(response.json()["data"]["id"], "failed")
    assert (failed["error"]["code"], failed["error"]["provider_code"]) == (
        "template_paused",
        132015,
    )


async def test_malformed_and_wrong_content_get_envelopes(api: Api) -> None:
    url = f"{api.sandbox.api_url}/{NUMBER_ID}/messages"
    headers = {**api.auth, "Content-Type": "application/json"}
    assert_error(
        await api.client.post(url, content=b"{not json", headers=headers), 400, "invalid_request"
    )
    assert_error(await api.client.post(url, content=b"", headers=headers), 400, "invalid_request")
    text = {**api.auth, "Content-Type": "text/plain"}
    assert_error(
        await api.client.post(url, content=b"hello", headers=text),
        400,
        "invalid_request",
        "Content-Type",
    )
    huge = b'{"x":"' + b"a" * 70_000 + b'"}'
    assert_error(await api.client.post(url, content=huge, headers=headers), 413, "invalid_request")
    too_long_key = {**headers, "Idempotency-Key": "k" * 256}
    response = await api.client.post(url, json=template_body(), headers=too_long_key)
    assert_error(response, 400, "invalid_field_value", "Idempotency-Key")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nowhere", 404),
        ("GET", "/v2/accounts", 404),
        ("GET", "/", 404),
        ("DELETE", f"/v1/{NUMBER_ID}/messages", 405),
        ("POST", "/v1/accounts", 405),
        ("GET", "/_sandbox/nothing", 404),
        ("DELETE", "/_sandbox/audit", 405),
    ],
)
async def test_unknown_paths_and_methods(api: Api, method: str, path: str, status: int) -> None:
    response = await api.client.request(method, api.sandbox.base_url + path, headers=api.auth)
    assert response.status_code == status
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


async def test_text_messages_fail_outside_the_window(launch: Launch) -> None:
    api = await launch(FAST)
    body = {
        "messaging_product": "whatsapp",
        "to": "+628111222333",
        "type": "text",
        "text": {"body": "hi"},
    }
    response = await api.send(body=body)
    assert response.status_code == 200
    failed = await api.wait_status(response.json()["data"]["id"], "failed")
    assert failed["error"]["code"] == "outside_24h_window"


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("invalid_phone_number", 400, "invalid_phone_number"),
        ("internal_error", 500, "internal_error"),
        ("whatsapp_upstream_error_sync", 502, "whatsapp_upstream_error"),
    ],
)
async def test_forced_synchronous_outcomes(
    launch: Launch, outcome: str, status: int, code: str
) -> None:
    api = await launch({"outcomes": {"forced": {"+62899": outcome}}})
    assert_error(await api.send("+628991112222"), status, code)
    assert (await api.send("+628111222333")).status_code == 200


async def test_metrics_and_healthz(api: Api) -> None:
    await api.send()
    metrics = await api.client.get(api.sandbox.base_url + "/metrics")
    counted = re.search(
        r'sandbox_requests_total\{endpoint="send",status="200"\} (\d+)', metrics.text
    )
    assert counted is not None
    assert int(counted.group(1)) >= 1
    health = await api.client.get(api.sandbox.base_url + "/healthz")
    assert health.status_code == 200
