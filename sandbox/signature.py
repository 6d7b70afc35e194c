"""Webhook signatures: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`.

Each `v1` is lowercase hex HMAC-SHA256 keyed with one secret's full UTF-8
string, over `<t>` + `.` + the raw body; every active secret signs (rotation).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def sign(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    parts = [f"t={timestamp}"]
    parts.extend(
        "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets
    )
    return ",".join(parts)
