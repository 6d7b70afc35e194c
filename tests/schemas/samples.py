"""Sample wire bodies for the schema tests, as JSON-ready Python values."""

from __future__ import annotations

import copy
import json
from typing import Any

JsonPath = tuple[str | int, ...]
DELETE = object()

# The request example from design.md's "Public contract", verbatim.
DESIGN_REQUEST: dict[str, Any] = {
    "type": "broadcast.requested",
    "campaign_id": "c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8b",
    "sender": {"phone_number_id": "106540352242922"},
    "template": {
        "name": "promo_flash_sale",
        "language": "id_ID",
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"}]}
        ],
    },
    "recipients": [
        {
            "phone": "+628111222333",
            "opted_in_at": "2026-01-05T10:00:00Z",
            "variables": {"first_name": "Budi"},
        }
    ],
    "chunk": {"index": 0, "count": 1},
}

# The `message.status` example from kirim-api.md's "Webhooks", verbatim.
KIRIM_STATUS_WEBHOOK: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "<waba id>",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "628...",
                            "phone_number_id": "106540352242922",
                        },
                        "statuses": [
                            {
                                "id": "wamid.HBgN...",
                                "status": "delivered",
                                "timestamp": "1716480010",
                                "recipient_id": "628111222333",
                                "errors": [
                                    {
                                        "code": 131026,
                                        "title": "...",
                                        "message": "...",
                                        "error_data": {"details": "..."},
                                    }
                                ],
                            }
                        ],
                    },
                }
            ],
        }
    ],
    "kirim": {
        "message_id": "msg_...",
        "phone_number_id": "106540352242922",
        "error": {"code": "recipient_not_on_whatsapp", "provider_code": 131026},
    },
}


def design_request() -> dict[str, Any]:
    """A fresh deep copy of `DESIGN_REQUEST`, safe to mutate."""
    return copy.deepcopy(DESIGN_REQUEST)


def kirim_status_webhook() -> dict[str, Any]:
    """A fresh deep copy of `KIRIM_STATUS_WEBHOOK`, safe to mutate."""
    return copy.deepcopy(KIRIM_STATUS_WEBHOOK)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def mutated(path: JsonPath, value: object) -> bytes:
    """The design's sample request with the value at `path` replaced (or deleted)."""
    doc = design_request()
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return dumps(doc)
