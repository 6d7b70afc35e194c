"""Kirim webhook signatures, checked as a pure function of header, body, secrets and time.

Contract (kirim-api.md, "Signature"): the header reads
`t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; each `v1` is HMAC-SHA256 keyed with
a secret's full UTF-8 string over `<t>` + `.` + the raw body. A delivery is
accepted when any configured secret matches any `v1` (several secrets are live
during a rotation) and `|now - t| <= tolerance`. Digests are compared with
`hmac.compare_digest`, and every pair is compared, so the time taken does not
depend on where a match was found.

The reasons a delivery is refused, checked in this order:

- `missing`: no signature header, or an empty one;
- `malformed`: not `key=value` pairs, no single decimal `t`, or no `v1` of 64
  hex digits (a truncated digest lands here);
- `stale`: `t` is more than `tolerance` seconds in the past (a replay);
- `future_dated`: `t` is more than `tolerance` seconds in the future;
- `mismatch`: well-formed and fresh, but no secret produced any of the `v1`s.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Reason = Literal["missing", "malformed", "stale", "future_dated", "mismatch"]
REASONS: Final[tuple[Reason, ...]] = ("missing", "malformed", "stale", "future_dated", "mismatch")

# Bounds that keep a hostile header from costing more than a normal one.
MAX_HEADER_CHARS: Final = 4096
MAX_SIGNATURES: Final = 16

_TIMESTAMP: Final = re.compile(r"[0-9]{1,15}")
_DIGEST: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: `reason` is None when the delivery is authentic and fresh."""

    reason: Reason | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


ACCEPTED: Final = Verdict()


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    """A parsed header. `timestamp` keeps the digits as received: they are what was signed."""

    timestamp: str
    digests: tuple[str, ...]


def parse_header(value: str) -> SignatureHeader | None:
    """Parse `t=..,v1=..[,v1=..]`; None when it is not that shape.

    Empty items are skipped and unknown schemes (`v0`, a future `v2`) ignored, as
    for other providers' signature headers; `v1` digests are compared in lower case.
    """
    if len(value) > MAX_HEADER_CHARS:
        return None
    timestamp: str | None = None
    digests: list[str] = []
    for item in value.split(","):
        if not item.strip():
            continue
        key, separator, field = item.partition("=")
        if not separator:
            return None
        key, field = key.strip(), field.strip()
        if key == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(field):
                return None
            timestamp = field
        elif key == "v1":
            digest = field.lower()
            if not _DIGEST.fullmatch(digest):
                return None
            digests.append(digest)
    if timestamp is None or not digests or len(digests) > MAX_SIGNATURES:
        return None
    return SignatureHeader(timestamp=timestamp, digests=tuple(digests))


def expected_digest(secret: bytes, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under one secret."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b".", hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[bytes],
    *,
    now: float,
    tolerance: float,
) -> Verdict:
    """Check one delivery. `secrets` are the UTF-8 bytes of each configured secret."""
    if header is None or not header.strip():
        return Verdict("missing")
    parsed = parse_header(header)
    if parsed is None:
        return Verdict("malformed")
    age = now - int(parsed.timestamp)
    if age > tolerance:
        return Verdict("stale")
    if age < -tolerance:
        return Verdict("future_dated")
    matched = False
    for secret in secrets:
        expected = expected_digest(secret, parsed.timestamp, body)
        for digest in parsed.digests:
            matched |= hmac.compare_digest(expected, digest)
    return ACCEPTED if matched else Verdict("mismatch")


def sign(body: bytes, secrets: Sequence[bytes], timestamp: int) -> str:
    """A header as Kirim builds it: every secret signs. For tests, benchmarks and tooling."""
    stamp = str(timestamp)
    return ",".join(
        [f"t={stamp}", *(f"v1={expected_digest(secret, stamp, body)}" for secret in secrets)]
    )
