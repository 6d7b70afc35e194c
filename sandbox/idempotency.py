"""Idempotency keys: fingerprint, in-progress reservation, stored replay, TTL.

Contract (kirim-api.md, "Idempotency"): a key is scoped to the organisation
(the sandbox has one) and remembered for `ttl` seconds from its first request.
`begin` decides what a request with a key gets:

- `Fresh`: first sight (or the key expired); the key is now in progress and the
  caller must end with `complete` (store the answer) or `abort` (forget it:
  5xx, 429 and state-dependent 4xx are not stored).
- `Replay`: same fingerprint, answer stored: replay it exactly.
- `InProgress`: same fingerprint, the first request has not finished.
- `Reuse`: a different fingerprint, whatever the state: 422.

Pure: time is a parameter; nothing here awaits.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec

MAX_KEY_LENGTH = 255

_canonical = msgspec.json.Encoder(order="sorted")


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no whitespace: two bodies with the same JSON value hash alike."""
    return _canonical.encode(document)


def fingerprint(method: str, path: str, canonical_body: bytes) -> str:
    """`sha256(method + path + canonical JSON body)`, hex."""
    digest = hashlib.sha256(method.encode())
    digest.update(path.encode())
    digest.update(canonical_body)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    # For the audit: which number and template a replay is about.
    phone_number_id: str
    template: str | None
    # Stored too: an injected anomaly may be text or HTML, and the replay must match.
    content_type: bytes = b"application/json"


@dataclass(frozen=True, slots=True)
class Fresh:
    pass


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class InProgress:
    pass


@dataclass(frozen=True, slots=True)
class Reuse:
    pass


Decision = Fresh | Replay | InProgress | Reuse


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    created_at: float
    response: StoredResponse | None


class IdempotencyStore:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        # Insertion order is creation order, so expiry pops from the front.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, key: str, print_: str, now: float) -> Decision:
        self.purge(now)
        entry = self._entries.get(key)
        if entry is not None and entry.created_at + self.ttl_seconds <= now:
            # Only reachable after the TTL was shortened at run time.
            del self._entries[key]
            entry = None
        if entry is None:
            self._entries[key] = _Entry(print_, now, None)
            return Fresh()
        if entry.fingerprint != print_:
            return Reuse()
        if entry.response is None:
            return InProgress()
        return Replay(entry.response)

    def complete(self, key: str, response: StoredResponse) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.response = response

    def abort(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.response is None:
            del self._entries[key]

    def purge(self, now: float) -> None:
        horizon = now - self.ttl_seconds
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            # An in-progress entry is never older than a request, so keep it.
            if entry.created_at > horizon or entry.response is None:
                break
            del entries[key]

    def clear(self) -> None:
        self._entries.clear()
