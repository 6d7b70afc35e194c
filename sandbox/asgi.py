"""ASGI plumbing for the sandbox's app: request headers, bodies, routes, dropped connections."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Request:
    """What the handlers need from the ASGI scope, read once."""

    __slots__ = ("authorization", "content_type", "idempotency_key", "method", "path", "rid")

    def __init__(self, scope: Scope, rid: str) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.rid = rid
        self.authorization: str | None = None
        self.idempotency_key: str | None = None
        self.content_type: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"idempotency-key":
                self.idempotency_key = value.decode("latin-1")
            elif name == b"content-type":
                self.content_type = value.decode("latin-1")


class TooLarge:
    """The body went past the size limit (a sentinel, never a body)."""


TOO_LARGE = TooLarge()


def route(parts: list[str], method: str) -> tuple[str, str, str]:
    """(endpoint, phone_number_id, message_id), "" when absent; "unknown"/"method" on a miss."""
    count = len(parts)
    if count == 1:
        name = parts[0]
        if name in {"health", "accounts", "me"}:
            return (name if method == "GET" else "method"), "", ""
        return "unknown", "", ""
    if parts[1] != "messages" or not parts[0]:
        return "unknown", "", ""
    if count == 2:
        return ("send" if method == "POST" else "method"), parts[0], ""
    if count == 3 and parts[2]:
        return ("get_message" if method == "GET" else "method"), parts[0], parts[2]
    return "unknown", "", ""


async def read_body(receive: Receive, limit: int) -> bytes | TooLarge | None:
    """The request body; `TOO_LARGE` past `limit`, None if the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def drop(send: Send) -> None:
    """Close the connection without answering.

    ASGI has no "abort". Uvicorn checks header values before writing anything:
    an invalid one makes `send` raise with nothing written, and an app that then
    returns without completing its answer gets its connection closed. The
    client sees the connection end with no response (a transport error).
    """
    with contextlib.suppress(RuntimeError):
        await send({"type": "http.response.start", "status": 500, "headers": [(b"x-drop", b"\n")]})
