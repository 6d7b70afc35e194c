"""The console's HTTP plumbing as plain ASGI middleware: headers, sign-in, CSRF, roles.

- `SecurityHeaders` puts a strict Content-Security-Policy (scripts and styles from
  this origin only: the vendored htmx, no inline code), no framing, no sniffing and no
  caching of pages on every answer.
- `Authenticate` lets a request through only with a signed session cookie or an
  `Authorization: Bearer` token (console/access.py); a browser asking for a page is
  sent to /login, anything else gets 401. /login, /static, /healthz and /readyz are
  open.
- Unsafe methods (POST) additionally need a session cookie, the session's CSRF token
  (form field `csrf_token` or header `X-CSRF-Token`) and the `operator` role; bearer
  tokens are for reading (curl, CSV exports), never for acting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final
from urllib.parse import quote

from console.access import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Credentials,
    Session,
    User,
    bearer_token,
    read_session,
)
from runtime.asgi import ASGIApp, Receive, Scope, Send

OPEN_PREFIXES: Final = ("/login", "/static/", "/healthz", "/readyz")
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_HEADERS: Final = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.extend(h for h in _HEADERS if h[0] not in names)
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def session_of(scope: Scope, secret: bytes, now: float) -> Session | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    cookie = SimpleCookie()
    try:
        cookie.load(raw)
    except CookieError:  # a malformed Cookie header is no session
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return read_session(secret, morsel.value if morsel else None, now)


class Authenticate:
    """Sets `scope["user"]` (a `User`) and `scope["session"]` (a `Session` or None)."""

    def __init__(
        self,
        app: ASGIApp,
        credentials: Credentials,
        secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.secret = secret
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        session = session_of(scope, self.secret, self.clock())
        user: User | None = session.user if session else None
        if user is None:
            token = bearer_token(_header(scope, b"authorization"))
            user = self.credentials.user_of(token) if token else None
        if user is None:
            await _refuse_anonymous(scope, send)
            return
        scope["user"] = user
        scope["session"] = session
        await self.app(scope, receive, send)


async def _refuse_anonymous(scope: Scope, send: Send) -> None:
    wants_page = scope["method"] == "GET" and "text/html" in (_header(scope, b"accept") or "")
    if wants_page and _header(scope, b"hx-request") is None:
        target = scope["path"] + (
            "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
        )
        location = "/login?next=" + quote(target, safe="")
        await _answer(send, 303, b"", [(b"location", location.encode())])
        return
    await _answer(
        send,
        401,
        b"sign in first: a session cookie from /login or Authorization: Bearer <token>\n",
        [(b"www-authenticate", b'Bearer realm="console"')],
    )


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def csrf_from_header(scope: Scope) -> str | None:
    return _header(scope, CSRF_HEADER.encode())
