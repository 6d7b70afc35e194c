"""The one exception `schemas` raises for bad input, and its closed set of reason codes.

Public contract:

- Every decoder in this package raises `InvalidEvent` and nothing else for bad
  input (bytes that are too large, not JSON, or not the expected shape).
- `InvalidEvent.reason` is one of `REASONS`: short, stable codes that go into
  the dead-letter headers and metric labels. New codes may be added; existing
  ones are never renamed.
- `InvalidEvent.detail` is for humans: it says what is wrong and where, as a
  JSON path, e.g. "Expected `str`, got `int` - at `$.recipients[3].phone`".

`InvalidEvent` subclasses `ValueError` on purpose: msgspec turns a `ValueError`
raised in a Struct's `__post_init__` into a `ValidationError` with the JSON path
appended and the original exception as `__cause__`, which is how cross-field
checks keep both their reason code and their path.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Reason = Literal[
    "too_large",
    "invalid_json",
    "schema_violation",
    "unknown_type",
    "invalid_sender",
    "chunk_out_of_range",
]

REASONS: Final[frozenset[str]] = frozenset(get_args(Reason))
"""Every reason code `InvalidEvent` can carry."""


# Named for what happened, like httpx's `InvalidURL`; "Error" would add nothing.
class InvalidEvent(ValueError):  # noqa: N818
    """Input that cannot be accepted; `reason` is a code from `REASONS`, `detail` explains."""

    reason: Reason
    detail: str

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
