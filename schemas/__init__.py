"""Wire types of the broadcast service: msgspec Structs, their codecs, one error type.

Modules (each states its public contract):

- `schemas.requests`: the `broadcast.requests` events and `decode_request_event`;
- `schemas.template`: the request's `template` block;
- `schemas.webhooks`: a lenient view of Kirim's `message.status` webhook body;
- `schemas.deadletter`: the `broadcast.requests.dlq` header envelope;
- `schemas.errors`: `InvalidEvent` and its reason codes;
- `schemas.export`: the generated JSON Schema (`python -m schemas`).

This package imports only the standard library and msgspec, never a service.
"""

from schemas.deadletter import DeadLetter
from schemas.errors import REASONS, InvalidEvent, Reason
from schemas.requests import (
    MAX_EVENT_BYTES,
    REQUEST_EVENT_TYPES,
    BroadcastCancelled,
    BroadcastPaused,
    BroadcastRequested,
    BroadcastResumed,
    Chunk,
    Recipient,
    RequestEvent,
    Sender,
    decode_request_event,
    encode_request_event,
    event_type,
    is_e164,
)
from schemas.template import Component, Template
from schemas.webhooks import (
    KNOWN_STATUSES,
    STATUS_EVENT_TYPES,
    StatusUpdate,
    StatusWebhook,
    decode_status_webhook,
    is_status_event,
    status_updates,
)

__all__ = [
    "KNOWN_STATUSES",
    "MAX_EVENT_BYTES",
    "REASONS",
    "REQUEST_EVENT_TYPES",
    "STATUS_EVENT_TYPES",
    "BroadcastCancelled",
    "BroadcastPaused",
    "BroadcastRequested",
    "BroadcastResumed",
    "Chunk",
    "Component",
    "DeadLetter",
    "InvalidEvent",
    "Reason",
    "Recipient",
    "RequestEvent",
    "Sender",
    "StatusUpdate",
    "StatusWebhook",
    "Template",
    "decode_request_event",
    "decode_status_webhook",
    "encode_request_event",
    "event_type",
    "is_e164",
    "is_status_event",
    "status_updates",
]
