"""The dead-letter envelope for `broadcast.requests.dlq`.

Public contract: a dead-lettered record keeps the ORIGINAL value bytes
untouched (and the original key), so it can be inspected or replayed as is;
why it was rejected travels in Kafka headers, all UTF-8:

| header                 | value                                          |
|------------------------|------------------------------------------------|
| `dlq.reason`           | reason code, e.g. `schema_violation`           |
| `dlq.detail`           | human message, at most `MAX_DETAIL_CHARS` chars |
| `dlq.source.topic`     | topic the record came from                     |
| `dlq.source.partition` | its partition, decimal                         |
| `dlq.source.offset`    | its offset, decimal                            |
| `dlq.failed_at`        | ISO 8601 / RFC 3339 UTC time of the rejection  |
| `dlq.service`          | the service that rejected it                   |

`DeadLetter.from_headers` reads them back (ignoring other headers; the last
occurrence of a name wins, so original headers copied ahead of these never
shadow them) and raises `schemas.errors.InvalidEvent` (`schema_violation`) when
one is missing or malformed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from msgspec import Struct

from schemas.errors import InvalidEvent

MAX_DETAIL_CHARS: Final = 1000
_ELLIPSIS: Final = "..."

REASON: Final = "dlq.reason"
DETAIL: Final = "dlq.detail"
SOURCE_TOPIC: Final = "dlq.source.topic"
SOURCE_PARTITION: Final = "dlq.source.partition"
SOURCE_OFFSET: Final = "dlq.source.offset"
FAILED_AT: Final = "dlq.failed_at"
SERVICE: Final = "dlq.service"
HEADER_NAMES: Final = (
    REASON,
    DETAIL,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    FAILED_AT,
    SERVICE,
)


def truncate_detail(detail: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`detail` cut to at most `limit` characters, marked with "..." when cut."""
    if len(detail) <= limit:
        return detail
    return detail[: limit - len(_ELLIPSIS)] + _ELLIPSIS


class DeadLetter(Struct, frozen=True, kw_only=True):
    """Why and where a record was rejected; `failed_at` must be timezone-aware."""

    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: datetime
    service: str

    def __post_init__(self) -> None:
        if self.failed_at.tzinfo is None:
            raise ValueError("DeadLetter.failed_at must be timezone-aware")

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers in `HEADER_NAMES` order; the detail is truncated to the bound."""
        values = (
            self.reason,
            truncate_detail(self.detail),
            self.source_topic,
            str(self.source_partition),
            str(self.source_offset),
            self.failed_at.astimezone(UTC).isoformat(),
            self.service,
        )
        return [(name, value.encode()) for name, value in zip(HEADER_NAMES, values, strict=True)]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]]) -> DeadLetter:
        """Read the envelope back from a record's headers (other headers are ignored)."""
        found = {name: value for name, value in headers if name in HEADER_NAMES}
        text: dict[str, str] = {}
        for name in HEADER_NAMES:
            value = found.get(name)
            if value is None:
                raise InvalidEvent("schema_violation", f"missing header `{name}`")
            try:
                text[name] = value.decode()
            except UnicodeDecodeError:
                raise InvalidEvent("schema_violation", f"header `{name}` is not UTF-8") from None
        try:
            partition = int(text[SOURCE_PARTITION])
            offset = int(text[SOURCE_OFFSET])
            failed_at = datetime.fromisoformat(text[FAILED_AT])
        except ValueError as exc:
            raise InvalidEvent("schema_violation", f"malformed dlq header: {exc}") from None
        if failed_at.tzinfo is None:
            raise InvalidEvent("schema_violation", f"header `{FAILED_AT}` has no timezone")
        return cls(
            reason=text[REASON],
            detail=text[DETAIL],
            source_topic=text[SOURCE_TOPIC],
            source_partition=partition,
            source_offset=offset,
            failed_at=failed_at,
            service=text[SERVICE],
        )
