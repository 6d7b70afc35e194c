"""Anomalous answers to a send (`faults.anomalies`): what a misbehaving API may say.

Each kind is an answer a client must survive without losing or doubling a
message. All but `unknown_code` alter the answer to a send that was processed
normally (the message exists, is counted and gets webhooks under its true id):

- `reused_id`: `data.id` is the id of an earlier, different message (the last
  one handed out normally); `missing_id` when there is none yet;
- `missing_id`: `data` without `id`;
- `non_json`: `text/plain` `OK`;
- `html`: `text/html`, a proxy's page;
- `oversized`: the normal envelope padded by a `padding` field to exactly
  `oversized_bytes` (never cut: a smaller setting leaves the envelope as is);
- `nul_id`: `data.id` is the true id followed by a NUL (JSON `\\u0000`),
  which a PostgreSQL text column cannot store.

`unknown_code` is answered instead of processing: `unknown_status` with an
error envelope whose `code` no client knows. Every kind is stored for the
idempotency key like a real answer, so a retry gets it again.

Pure: the message's view, the earlier id and the options are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

from sandbox.config import Anomalies, AnomalyKind
from sandbox.errors import ApiError, encode_error
from sandbox.wire import MessageView, Single, encoder

JSON: Final = b"application/json"
PLAIN: Final = b"text/plain; charset=utf-8"
HTML: Final = b"text/html; charset=utf-8"
NUL: Final = "\x00"
HTML_PAGE: Final = (
    b"<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n"
    b"<body>\n<h1>Welcome to nginx!</h1>\n"
    b"<p>If you see this page, the web server is successfully installed.</p>\n"
    b"</body>\n</html>\n"
)


@dataclass(frozen=True, slots=True)
class OddAnswer:
    """The answer given; `kind` is what was answered (after the `reused_id` fallback)."""

    kind: AnomalyKind
    status: int
    content_type: bytes
    body: bytes
    answered_id: str | None


class _Padded(msgspec.Struct, frozen=True):
    data: MessageView
    request_id: str
    padding: str


def accepted_answer(
    kind: AnomalyKind,
    view: MessageView,
    request_id: str,
    *,
    status: int,
    earlier_id: str | None,
    options: Anomalies,
) -> OddAnswer:
    """The odd answer to a processed send; `kind` must not be `unknown_code`."""
    if kind == "reused_id" and earlier_id is None:
        kind = "missing_id"
    if kind == "reused_id":
        shown = msgspec.structs.replace(view, id=earlier_id)
        return OddAnswer(kind, status, JSON, encoder.encode(Single(shown, request_id)), earlier_id)
    if kind == "missing_id":
        data: dict[str, Any] = msgspec.to_builtins(view)
        del data["id"]
        return OddAnswer(kind, status, JSON, encoder.encode(Single(data, request_id)), None)
    if kind == "non_json":
        return OddAnswer(kind, status, PLAIN, b"OK", None)
    if kind == "html":
        return OddAnswer(kind, status, HTML, HTML_PAGE, None)
    if kind == "oversized":
        base = len(encoder.encode(_Padded(view, request_id, "")))
        # One byte per "x", so the body ends exactly at the target size.
        padding = "x" * max(0, options.oversized_bytes - base)
        body = encoder.encode(_Padded(view, request_id, padding))
        return OddAnswer(kind, status, JSON, body, view.id)
    if kind == "nul_id":
        odd_id = view.id + NUL
        shown = msgspec.structs.replace(view, id=odd_id)
        return OddAnswer(kind, status, JSON, encoder.encode(Single(shown, request_id)), odd_id)
    raise ValueError(f"{kind} is not an answer to a processed send")


def refusal(options: Anomalies, request_id: str) -> OddAnswer:
    """`unknown_code`: a 4xx no client can classify by its code; nothing was processed."""
    error = ApiError(
        options.unknown_status, options.unknown_code, "the request could not be completed"
    )
    return OddAnswer("unknown_code", error.status, JSON, encode_error(error, request_id), None)
