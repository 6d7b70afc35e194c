"""Identifiers the sandbox mints: `msg_`, `req_`, `wbd_` and Meta wamids.

`msg_` ids are 26 Crockford base32 upper-case characters over 48 bits of
milliseconds and 80 random bits (ULID layout), so they sort by creation time.
"""

from __future__ import annotations

import base64
import os
from typing import Final

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FROM_RFC4648: Final = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())


def _crockford(raw: bytes, length: int) -> str:
    # RFC 4648 base32 maps 5-bit groups big-endian in alphabet order, so translating
    # its alphabet to Crockford's (also ascending) keeps the byte order of `raw`.
    return base64.b32encode(raw).translate(_FROM_RFC4648)[:length].decode()


def message_id(now: float) -> str:
    millis = int(now * 1000) & 0xFFFF_FFFF_FFFF
    return "msg_" + _crockford(millis.to_bytes(6, "big") + os.urandom(10), 26)


def request_id() -> str:
    return "req_" + _crockford(os.urandom(15), 24)


def delivery_id() -> str:
    return "wbd_" + _crockford(os.urandom(15), 24)


def wamid(msg_id: str, recipient_digits: str) -> str:
    """Meta-looking, deterministic for a message: `wamid.HBgN...`."""
    raw = recipient_digits.encode() + b"\x15\x02\x00\x11\x18" + msg_id.encode()
    return "wamid.HBgN" + base64.b64encode(raw).decode().rstrip("=")
