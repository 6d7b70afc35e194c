"""ASGI plumbing for the sandbox's app: request headers, bodies, routes, dropped connections."""

from __future__ import annotations

import contextlib

from runtime.asgi import Scope, Send


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


async def drop(send: Send) -> None:
    """Close the connection without answering.

    ASGI has no "abort". Uvicorn checks header values before writing anything:
    an invalid one makes `send` raise with nothing written, and an app that then
    returns without completing its answer gets its connection closed. The
    client sees the connection end with no response (a transport error).
    """
    with contextlib.suppress(RuntimeError):
        await send({"type": "http.response.start", "status": 500, "headers": [(b"x-drop", b"\n")]})
