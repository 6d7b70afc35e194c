"""Recipient phone numbers to E.164, or a refusal.

Rules (public, see docs/intake.md):

- surrounding whitespace is ignored;
- the number must be international: a leading `+`, then ASCII digits, optionally
  grouped with spaces, `-`, `.` or parentheses. No region is guessed for a number
  without `+` (a CRM's local format is ambiguous), and letters, extensions and
  other digit scripts are refused rather than reinterpreted;
- `phonenumbers` must judge the number valid for its country's numbering plan;
- the result is the canonical E.164 string (`+628111222333`).
"""

from __future__ import annotations

import functools
import re
from typing import Final

import phonenumbers

_SHAPE: Final = re.compile(r"\+[0-9][0-9 ().\-]*")
# The ledger key of a refused number is its raw text; PostgreSQL text cannot hold NUL.
_UNSTORABLE: Final = re.compile("[\x00]")


def key_for_invalid(raw: str) -> str:
    """The ledger key of a number that is not valid: the trimmed raw text, made storable."""
    return _UNSTORABLE.sub("\ufffd", raw.strip())


@functools.lru_cache(maxsize=1 << 15)
def normalize_phone(raw: str) -> str | None:
    """E.164 form of `raw`, or None when it is not a valid international number.

    Parsing costs ~13 us a number; audiences repeat across campaigns, so a bounded
    cache of recent answers pays for itself. The function is pure, so caching is safe.
    """
    text = raw.strip()
    if _SHAPE.fullmatch(text) is None:
        return None
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if parsed.extension or not phonenumbers.is_valid_number(parsed):
        return None
    e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164
