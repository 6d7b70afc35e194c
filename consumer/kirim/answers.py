"""Reading a send's HTTP answer into a `SendAnswer` (pure: bytes and headers in).

An API may answer anything: a 2xx without an id, an HTML page from a proxy, a body
of megabytes, an id PostgreSQL cannot store. None of that raises here; each is
named as an `anomaly` with a short, masked `detail`, and the dispatcher's policy
decides what happens to that one recipient.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import msgspec

# Anomaly kinds: a bounded set, so they may be metric labels.
OVERSIZED = "oversized_answer"
UNREADABLE = "unreadable_answer"
MISSING_ID = "missing_message_id"
INVALID_ID = "invalid_message_id"
UNEXPECTED_STATUS = "unexpected_status"

# Message ids are stored, indexed and put in URLs: printable, no spaces, bounded.
_USABLE_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
# Error codes are grouped on and shown to operators: a short snake_case word.
_USABLE_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_DIGIT_RUN = re.compile(r"\+?\d{7,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class SendAnswer:
    status: int
    message_id: str | None
    error_code: str | None
    error_message: str | None
    retry_after: float | None
    rate_limit: float | None
    rate_remaining: float | None
    replayed: bool
    # Set when the answer could not be taken at its word (see the kinds above).
    anomaly: str | None = None


class _Error(msgspec.Struct):
    code: object = None
    message: object = None


class _Message(msgspec.Struct):
    id: object = None


class _SendBody(msgspec.Struct):
    data: _Message | None = None
    error: _Error | None = None


_send_decoder = msgspec.json.Decoder(_SendBody)


def printable(text: str, limit: int = DETAIL_CHARS) -> str:
    """`text` safe to store and log: control characters escaped, digit runs that may be
    phone numbers masked, at most `limit` characters."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
    text = _DIGIT_RUN.sub(lambda m: m[0][:3] + "*" * (len(m[0]) - 5) + m[0][-2:], text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def usable_code(code: object) -> str | None:
    """The error code to branch on: the contract's codes are snake_case, so another case
    of the same word (`ACCOUNT_NOT_CONNECTED`) is that code; anything else is none."""
    if not isinstance(code, str):
        return None
    code = code.strip().lower()
    return code if _USABLE_CODE.match(code) else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _retry_after(value: str | None, date: str | None) -> float | None:
    """`Retry-After` in seconds, or as an HTTP date (RFC 9110) measured against the
    answer's own `Date`, so no clock of ours is involved; ours only when it has none."""
    seconds = _number(value)
    if seconds is not None or value is None:
        return None if seconds is None else max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(date) if date is not None else datetime.now(UTC)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None or sent.tzinfo is None:
        return None
    return max(0.0, (when - sent).total_seconds())


def read_send_answer(
    status: int, raw: bytes, truncated: bool, header: Callable[[str], str | None]
) -> SendAnswer:
    """The answer to one POST .../messages. `truncated`: the body was longer than the
    client reads, so only `raw`'s first bytes are known."""
    parsed: _SendBody | None = None
    anomaly: str | None = None
    detail: str | None = None
    if truncated:
        anomaly, detail = OVERSIZED, f"HTTP {status} with a body over {len(raw)} bytes"
    elif raw:
        try:
            parsed = _send_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            snippet = raw[:80].decode("utf-8", "replace")
            anomaly = UNREADABLE
            detail = f"HTTP {status} {header('Content-Type') or 'no content type'}: {snippet!r}"
    error = parsed.error if parsed else None
    code = usable_code(error.code) if error else None
    message = printable(error.message) if error and isinstance(error.message, str) else None
    if error is not None and error.code is not None and code is None:
        message = printable(f"unreadable error code {error.code!r}; {message or ''}")
    message_id: str | None = None
    if 400 <= status < 600:
        # An error status decides by itself; a body it came with is only context.
        anomaly = None
    elif not 200 <= status < 300:
        anomaly, detail = UNEXPECTED_STATUS, f"HTTP {status} to a send"
    elif anomaly is None:
        raw_id = parsed.data.id if parsed and parsed.data else None
        if isinstance(raw_id, str) and _USABLE_ID.match(raw_id):
            message_id = raw_id
        elif raw_id is None:
            anomaly, detail = MISSING_ID, f"HTTP {status} without data.id"
        else:
            anomaly, detail = INVALID_ID, f"HTTP {status} with data.id {raw_id!r}"
    if anomaly is not None:
        message = printable(f"{anomaly}: {detail}")
    return SendAnswer(
        status=status,
        message_id=message_id,
        error_code=code,
        error_message=message,
        retry_after=_retry_after(header("Retry-After"), header("Date")),
        rate_limit=_number(header("X-RateLimit-Limit")),
        rate_remaining=_number(header("X-RateLimit-Remaining")),
        replayed=(header("Idempotent-Replayed") or "").lower() == "true",
        anomaly=anomaly,
    )
