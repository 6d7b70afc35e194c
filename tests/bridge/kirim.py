"""Webhook bodies and signed headers as Kirim sends them, for the bridge and projector tests."""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec

from webhook_bridge.verify import sign

SECRET = "whsec_test_current_0123456789"
OLD_SECRET = "whsec_test_previous_9876543210"
PHONE_NUMBER_ID = "106540352242922"

_encoder = msgspec.json.Encoder()


def status_body(
    *,
    message_id: str | None,
    wamid: str,
    status: str,
    timestamp: int,
    recipient_id: str = "628111222333",
    error_code: str | None = None,
    provider_code: int | None = None,
) -> bytes:
    """A `message.status` body: Meta's JSON plus the `kirim` block (kirim-api.md)."""
    entry_status: dict[str, object] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": recipient_id,
    }
    kirim: dict[str, object] = {"phone_number_id": PHONE_NUMBER_ID}
    if message_id is not None:
        kirim["message_id"] = message_id
    if status == "failed" and error_code is not None:
        entry_status["errors"] = [
            {
                "code": provider_code,
                "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": f"{error_code} details"},
            }
        ]
        kirim["error"] = {"code": error_code, "provider_code": provider_code}
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "6281100000001",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "statuses": [entry_status],
                        },
                    }
                ],
            }
        ],
        "kirim": kirim,
    }
    return _encoder.encode(body)


def signed_headers(
    body: bytes,
    secrets: Sequence[str] = (SECRET,),
    *,
    timestamp: int | None = None,
    event: str = "message.status",
    header: str = "X-Kirim-Signature",
    event_id: str = "wamid.test",
    attempt: int = 1,
) -> dict[str, str]:
    """The headers of one delivery attempt, signed by every secret in `secrets`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "X-Kirim-Source": "meta",
        "X-Kirim-Event": event,
        "X-Kirim-Event-Id": event_id,
        "X-Kirim-Delivery-Id": "wbd_TEST",
        "X-Kirim-Attempt": str(attempt),
        header: sign(body, [secret.encode() for secret in secrets], stamp),
    }
