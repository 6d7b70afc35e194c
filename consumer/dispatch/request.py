"""The exact bytes of a send: idempotency key and body, deterministic for a recipient.

A retry must repeat the first request byte for byte or the API answers 422
`idempotency_key_reuse`, so the body is built from stored values only, with one
key order and one language form.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def idempotency_key(campaign_id: str, phone: str, generation: int = 0) -> str:
    """hex sha256(campaign_id + ":" + phone); later generations (a re-send after the
    first message failed asynchronously) append ":" + generation."""
    material = (
        f"{campaign_id}:{phone}" if generation == 0 else f"{campaign_id}:{phone}:{generation}"
    )
    return hashlib.sha256(material.encode()).hexdigest()


def template_body(phone: str, name: str, language: str, components: list[Any]) -> bytes:
    return _encoder.encode(
        {
            "messaging_product": "whatsapp",
            "to": phone,
            "type": "template",
            "template": {"name": name, "language": {"code": language}, "components": components},
        }
    )
