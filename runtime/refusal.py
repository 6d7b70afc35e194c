"""Is a database error PostgreSQL refusing the data we sent, or something else?

A refusal is about the values of one write: the server (or asyncpg, encoding a
parameter) says they cannot be stored. Retrying the same values cannot help, and
the rest of the stream is fine, so callers set the offending event aside (dead
letter, rejects table) and go on. Any other error is about the database or our
own SQL (a missing migration, a read-only failover, a full disk): setting events
aside then would turn an outage into lost data, so callers let it crash.

Refusals are the SQLSTATE classes below. asyncpg reports a parameter it cannot
encode (a lone surrogate, an int beyond int64, a datetime beyond year 9999 in
UTC) as `DataError` with SQLSTATE 22000, so it is one too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import asyncpg

from runtime.logs import mask_phone

# 22 data exception (out of range, NUL, invalid text), 23 integrity constraint
# violation (check, not null, unique, foreign key), 54 program limit exceeded (a
# value too large for an index row).
REFUSAL_CLASSES: Final = frozenset({"22", "23", "54"})
MAX_DETAIL_CHARS: Final = 1000
# Phone numbers in a server message (`Failing row contains (..., +628111222333, ...)`).
_PHONE_LIKE: Final = re.compile(r"\+?\d{7,}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why PostgreSQL refused a write: its SQLSTATE and a masked, bounded message."""

    sqlstate: str
    detail: str


def masked(text: str) -> str:
    """`text` with phone-like digit runs masked, NUL and lone surrogates made storable."""
    text = _PHONE_LIKE.sub(lambda match: mask_phone(match.group()), text)
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def refusal_of(error: BaseException) -> Refusal | None:
    """The refusal `error` is (see the module docstring), or None when it is not one."""
    if not isinstance(error, asyncpg.PostgresError):
        return None
    sqlstate = str(getattr(error, "sqlstate", "") or "")
    if sqlstate[:2] not in REFUSAL_CLASSES:
        return None
    parts = [f"{sqlstate} {type(error).__name__}: {error}"]
    detail = getattr(error, "detail", None)
    if detail:
        parts.append(str(detail))
    return Refusal(sqlstate, masked("; ".join(parts))[:MAX_DETAIL_CHARS])
