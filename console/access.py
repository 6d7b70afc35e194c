"""Who may use the console and how: credentials, roles, sessions and CSRF tokens.

Pure: no I/O, no clock of its own (callers pass `now`), no randomness except what
callers pass in. Tested exhaustively in tests/console/test_access.py.

- A credential is a token. `CONSOLE_TOKEN` is one operator token (user `operator`);
  `CONSOLE_USERS` lists `name:role:token` entries (roles `viewer`, `operator`).
- A browser signs in once with its token and gets a session cookie: the user's name,
  role and expiry, signed with HMAC-SHA256 under the console's secret. Nothing is
  kept server-side, so several console replicas with the same secret agree.
- Every action carries a CSRF token bound to the session (HMAC of the session's
  signature), checked with a constant-time compare; the cookie is also
  `SameSite=Strict`, but a token does not rely on the browser's good behaviour.
- `viewer` reads everything but full phone numbers, and acts on nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

SESSION_COOKIE: Final = "console_session"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
# A token shorter than this is refused at start: it could be guessed.
MIN_TOKEN_CHARS: Final = 16
_SEPARATOR: Final = "|"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"

    @property
    def may_act(self) -> bool:
        return self is Role.OPERATOR

    @property
    def sees_numbers(self) -> bool:
        return self is Role.OPERATOR


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role


class AccessConfigError(ValueError):
    """The credentials configuration cannot be used (the message says which part)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Token -> user. Built once from the settings; never logged."""

    by_token: dict[str, User] = field(repr=False)

    @classmethod
    def parse(cls, single_token: str, users: str) -> Credentials:
        """From `CONSOLE_TOKEN` (an operator) and `CONSOLE_USERS` (`name:role:token`,
        comma-separated). At least one credential is required: the console never
        runs open."""
        by_token: dict[str, User] = {}
        names: set[str] = set()

        def add(name: str, role: Role, token: str, where: str) -> None:
            if len(token) < MIN_TOKEN_CHARS:
                raise AccessConfigError(f"{where}: a token needs at least {MIN_TOKEN_CHARS} chars")
            if token in by_token:
                raise AccessConfigError(f"{where}: the same token is given twice")
            if name in names:
                raise AccessConfigError(f"{where}: user {name!r} is listed twice")
            names.add(name)
            by_token[token] = User(name, role)

        if single_token.strip():
            add("operator", Role.OPERATOR, single_token.strip(), "CONSOLE_TOKEN")
        for index, entry in enumerate(part.strip() for part in users.split(",")):
            if not entry:
                continue
            where = f"CONSOLE_USERS entry {index + 1}"
            name, sep1, rest = entry.partition(":")
            role_text, sep2, token = rest.partition(":")
            token = token.strip()  # as every presented token is: else it could never match
            if not (sep1 and sep2 and name and token):
                raise AccessConfigError(f"{where}: expected name:role:token")
            bare = name.replace("-", "").replace("_", "").replace(".", "")
            # ASCII only: the name travels in the session cookie, which is US-ASCII.
            if not (bare.isascii() and bare.isalnum()):
                raise AccessConfigError(f"{where}: a name is letters, digits, '.', '-', '_'")
            try:
                role = Role(role_text)
            except ValueError:
                raise AccessConfigError(
                    f"{where}: role {role_text!r} is not one of viewer, operator"
                ) from None
            add(name, role, token, where)
        if not by_token:
            raise AccessConfigError("set CONSOLE_TOKEN or CONSOLE_USERS: the console needs one")
        return cls(by_token)

    def user_of(self, token: str) -> User | None:
        """The user a presented token belongs to. Every known token is compared in
        constant time, so timing says nothing about which prefix matched."""
        presented = token.encode()
        found: User | None = None
        for known, user in self.by_token.items():
            if hmac.compare_digest(known.encode(), presented):
                found = user
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    expires_at: int
    signature: str


def _sign(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_session(secret: bytes, user: User, now: float, lifetime_seconds: int) -> str:
    """The cookie value: `name|role|expiry|signature` (names hold no `|`)."""
    payload = _SEPARATOR.join((user.name, user.role.value, str(int(now) + lifetime_seconds)))
    return f"{payload}{_SEPARATOR}{_sign(secret, payload)}"


def read_session(secret: bytes, cookie: str | None, now: float) -> Session | None:
    """The session a cookie proves, or None when it is missing, forged or expired."""
    if not cookie:
        return None
    parts = cookie.split(_SEPARATOR)
    if len(parts) != 4:
        return None
    name, role_text, expiry_text, signature = parts
    payload = _SEPARATOR.join((name, role_text, expiry_text))
    if not hmac.compare_digest(_sign(secret, payload).encode(), signature.encode()):
        return None
    try:
        role = Role(role_text)
        expires_at = int(expiry_text)
    except ValueError:
        return None
    if expires_at <= now:
        return None
    return Session(User(name, role), expires_at, signature)


def csrf_token(secret: bytes, session: Session) -> str:
    """The CSRF token of one session: only someone who can read the page has it."""
    return _sign(secret, f"csrf{_SEPARATOR}{session.signature}")


def csrf_valid(secret: bytes, session: Session, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(secret, session).encode(), presented.encode())


def decode_secret(text: str) -> bytes:
    """`CONSOLE_SECRET` as bytes: hex or URL-safe base64 of at least 32 bytes."""
    value = text.strip()
    for decode in (bytes.fromhex, _base64url):
        try:
            raw = decode(value)
        except (ValueError, binascii.Error):
            continue
        if len(raw) >= 32:
            return raw
    raise AccessConfigError("CONSOLE_SECRET must be at least 32 bytes, hex or base64")


def _base64url(value: str) -> bytes:
    # validate: a character outside the alphabet is a mistake to refuse, not one to skip.
    return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)


def mask_number(phone: str) -> str:
    """+6281234567890 -> +62812*****890: enough to tell recipients apart on a page."""
    if len(phone) <= 9:  # six leading and three trailing would show all of it
        return "*" * len(phone)
    return phone[:6] + "*" * (len(phone) - 9) + phone[-3:]
