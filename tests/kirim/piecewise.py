"""An HTTP/1.1 server on 127.0.0.1 that writes each answer's body in pieces, with pauses.

Written on asyncio streams so that the framing is exactly what the test says: one
`Content-Length` body split over several writes, chunked transfer encoding, a body
delimited by closing the connection, or chunks that never end. Each request takes
the next scripted answer; the last one repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Framing = Literal["length", "chunked", "close"]
_REASONS = {200: "OK", 404: "Not Found", 422: "Unprocessable Entity", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    framing: Framing = "length"
    pieces: int = 1
    pause: float = 0.01
    headers: dict[str, str] = field(default_factory=dict)
    # Chunked only: after the body, keep sending `endless`-byte chunks until the peer goes.
    endless: int = 0


@dataclass
class PiecewiseServer:
    replies: list[Reply]
    requests: list[str] = field(default_factory=list)
    # Set when a write failed because the client had gone (it stopped reading).
    peer_left: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def _next(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.requests.append(lines[0])
            length = next(
                (int(v) for k, _, v in (h.partition(":") for h in lines[1:])
                 if k.strip().lower() == "content-length"),
                0,
            )  # fmt: skip
            await reader.readexactly(length)
            await self._answer(self._next(), writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.peer_left.set()
        except asyncio.CancelledError:
            # The server is closing (piecewise_server). Returning, not raising: asyncio
            # logs a connection callback that ends cancelled as an error.
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reply: Reply, writer: asyncio.StreamWriter) -> None:
        headers = {"Content-Type": "application/json", "Connection": "close", **reply.headers}
        if reply.framing == "length":
            headers["Content-Length"] = str(len(reply.body))
        elif reply.framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        status_line = f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Other')}\r\n"
        fields = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write((status_line + fields + "\r\n").encode("latin-1"))
        await writer.drain()
        size = -(-len(reply.body) // reply.pieces) if reply.body else 0
        for start in range(0, len(reply.body), size or 1):
            await asyncio.sleep(reply.pause)
            await self._write(writer, reply.body[start : start + size], reply.framing)
        if reply.framing == "chunked":
            while reply.endless:
                await asyncio.sleep(reply.pause)
                await self._write(writer, b" " * reply.endless, "chunked")
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, piece: bytes, framing: Framing) -> None:
        if framing == "chunked":
            piece = b"%x\r\n%s\r\n" % (len(piece), piece)
        writer.write(piece)
        await writer.drain()


@contextlib.asynccontextmanager
async def piecewise_server(*replies: Reply) -> AsyncIterator[PiecewiseServer]:
    server = PiecewiseServer(list(replies))
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()
        # Answers the client stopped reading may still be pausing between pieces.
        for handler in server.handlers:
            handler.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
