"""The webhook endpoint as a plain ASGI app: size cap, signature, JSON, produce.

Answers (each one final or retried by Kirim, see docs/webhooks.md):

- 200 `produced`: a status event is in Kafka (acknowledged by the broker);
- 200 `ignored`: an authentic event of a type we do not republish;
- 400: authentic, but the body is not JSON (final: Kirim dead-letters it);
- 401: signature missing, malformed, stale, future-dated or not ours;
- 404 / 405: another path, or not POST;
- 413: body over `max_body_bytes` (checked before the signature: nothing is hashed);
- 503: the event could not be stored (not connected to Kafka yet, Kafka down, slow or
  our queue full): Kirim retries.

Status events go to the topic unchanged: value = the raw body bytes, key =
`kirim.message_id` (else the first status's wamid, else `X-Kirim-Event-Id`),
headers = the Kirim headers as received plus `X-Bridge-Received-At` (Unix ms).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import msgspec

from runtime.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    TooLarge,
    declared_length,
    read_body,
    respond,
)
from runtime.logs import get_logger
from schemas.errors import InvalidEvent
from schemas.webhooks import StatusWebhook, decode_status_webhook, is_status_event
from webhook_bridge import metrics
from webhook_bridge.produce import StatusProducer, Unavailable
from webhook_bridge.settings import BridgeSettings
from webhook_bridge.verify import verify

log = get_logger(__name__)

SIGNATURE_HEADERS: Final = (b"x-kirim-signature", b"x-kirim-signature-256")
# Lower-case ASGI name -> the name written to Kafka.
FORWARDED_HEADERS: Final = {
    b"x-kirim-event": "X-Kirim-Event",
    b"x-kirim-event-id": "X-Kirim-Event-Id",
    b"x-kirim-delivery-id": "X-Kirim-Delivery-Id",
    b"x-kirim-attempt": "X-Kirim-Attempt",
    b"x-kirim-source": "X-Kirim-Source",
    b"x-kirim-signature": "X-Kirim-Signature",
    b"x-kirim-signature-256": "X-Kirim-Signature-256",
}
RECEIVED_AT_HEADER: Final = "X-Bridge-Received-At"

_JSON_SYNTAX: Final = msgspec.json.Decoder(msgspec.Raw)
_encoder: Final = msgspec.json.Encoder()

Clock = Callable[[], float]
Accepting = Callable[[], bool]


def _message_key(webhook: StatusWebhook) -> str | None:
    if webhook.kirim is not None and webhook.kirim.message_id:
        return webhook.kirim.message_id
    for entry in webhook.entry or ():
        for change in entry.changes or ():
            if change.value is not None and change.value.statuses:
                return change.value.statuses[0].id
    return None


def _is_json(body: bytes) -> bool:
    try:
        _JSON_SYNTAX.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


async def _answer(send: Send, status: int, outcome: metrics.Outcome, **fields: str) -> None:
    metrics.count_request(outcome)
    await respond(send, status, _encoder.encode({"outcome": outcome, **fields}))


def bridge_app(
    settings: BridgeSettings,
    producer: StatusProducer,
    clock: Clock = time.time,
    *,
    accepting: Accepting = lambda: True,
) -> ASGIApp:
    """The ASGI app for `settings.path`; `clock` returns Unix seconds (tests may pin it).

    While `accepting()` is false (the service is starting) an event that would be
    stored is answered 503 `not_ready`; every other answer is the same as when ready."""
    secrets = tuple(secret.encode("utf-8") for secret in settings.secrets)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != settings.path:
            await _answer(send, 404, "not_found")
            return
        if scope["method"] != "POST":
            await _answer(send, 405, "method_not_allowed")
            return
        body = await read_body(receive, settings.max_body_bytes, declared_length(scope))
        if body is None:
            return
        if isinstance(body, TooLarge):
            await _answer(send, 413, "too_large")
            return

        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in FORWARDED_HEADERS:
                headers.setdefault(name, value)
        signature = next((headers[name] for name in SIGNATURE_HEADERS if name in headers), None)
        verdict = verify(
            signature.decode("latin-1") if signature is not None else None,
            body,
            secrets,
            now=clock(),
            tolerance=settings.tolerance_seconds,
        )
        if verdict.reason is not None:
            metrics.SIGNATURE_FAILURES.labels(verdict.reason).inc()
            log.debug("webhook_refused", reason=verdict.reason)
            await _answer(send, 401, "unauthorized", reason=verdict.reason)
            return

        event_type = headers.get(b"x-kirim-event", b"").decode("latin-1")
        # An authentic event without a type might be a status: storing it costs a
        # record, dropping it could lose a status for good.
        if event_type and not is_status_event(event_type):
            if not _is_json(body):
                await _answer(send, 400, "bad_request", reason="invalid_json")
                return
            await _answer(send, 200, "ignored")
            return

        key: str | None
        try:
            key = _message_key(decode_status_webhook(body, max_bytes=settings.max_body_bytes))
        except InvalidEvent as error:
            if error.reason == "invalid_json":
                await _answer(send, 400, "bad_request", reason="invalid_json")
                return
            # Authentic JSON of an unexpected shape: keep the raw bytes so a fixed
            # projector can replay them; the projector counts and skips it meanwhile.
            metrics.UNREADABLE_STATUS_BODIES.inc()
            log.warning("status_body_unreadable", reason=error.reason)
            key = None
        if key is None and b"x-kirim-event-id" in headers:
            key = headers[b"x-kirim-event-id"].decode("latin-1")

        if not accepting():
            await _answer(send, 503, "unavailable", reason="not_ready")
            return
        record_headers = [(FORWARDED_HEADERS[name], value) for name, value in headers.items()]
        record_headers.append((RECEIVED_AT_HEADER, str(int(clock() * 1000)).encode()))
        try:
            await producer.publish(key.encode() if key is not None else None, body, record_headers)
        except Unavailable as error:
            log.debug("webhook_not_stored", cause=error.cause)
            await _answer(send, 503, "unavailable", reason=error.cause)
            return
        await _answer(send, 200, "produced")

    return app
