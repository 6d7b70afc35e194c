"""A campaign's audience split into request events, each well under Kafka's 1 MB (pure).

Recipients are cut into runs of `chunk_size` (at most `MAX_RECIPIENTS`) in file
order, so the first occurrence of a duplicate phone is in the lowest chunk, as
the preview assumes. A run whose event would exceed `max_bytes` (default
`BYTES_BUDGET`, 3/4 of `MAX_EVENT_BYTES`) is halved until it fits; sizes are
measured with the widest possible `chunk` field, so the final events can only
be smaller. Every event is checked with `decode_request_event(encode(...))`,
as schemas asks of producers. The split is deterministic: the same file and
flags give the same chunks, so a publish can be repeated with the same
campaign id and intake treats the chunks as redeliveries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cli.errors import UsageError
from schemas.errors import InvalidEvent
from schemas.requests import (
    MAX_EVENT_BYTES,
    MAX_RECIPIENTS,
    BroadcastRequested,
    Chunk,
    Recipient,
    Sender,
    decode_request_event,
    encode_request_event,
)
from schemas.template import Template

BYTES_BUDGET: Final = MAX_EVENT_BYTES * 3 // 4
DEFAULT_CHUNK_SIZE: Final = 5_000
MAX_CHUNKS: Final = 100_000
_WIDEST: Final = Chunk(index=MAX_CHUNKS - 1, count=MAX_CHUNKS)


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    event: BroadcastRequested
    value: bytes
    # Positions in the audience of this chunk's first and one-past-last recipient.
    start: int
    stop: int


def build_chunks(
    *,
    campaign_id: uuid.UUID,
    sender: Sender,
    template: Template,
    recipients: Sequence[Recipient],
    send_at: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_bytes: int = BYTES_BUDGET,
) -> list[EncodedChunk]:
    """The audience as ordered request events (see the module docstring)."""
    if not recipients:
        raise UsageError("no recipients to publish")
    if not 1 <= chunk_size <= MAX_RECIPIENTS:
        raise UsageError(f"--chunk-size must be between 1 and {MAX_RECIPIENTS:,}")

    def event(start: int, stop: int, chunk: Chunk) -> BroadcastRequested:
        return BroadcastRequested(
            campaign_id=campaign_id,
            sender=sender,
            template=template,
            recipients=list(recipients[start:stop]),
            chunk=chunk,
            send_at=send_at,
        )

    runs: list[tuple[int, int]] = []
    total = len(recipients)
    pending = [(s, min(s + chunk_size, total)) for s in range(0, total, chunk_size)]
    pending.reverse()
    while pending:
        start, stop = pending.pop()
        size = len(encode_request_event(event(start, stop, _WIDEST)))
        if size <= max_bytes:
            runs.append((start, stop))
        elif stop - start == 1:
            raise UsageError(f"recipient #{start + 1} alone is {size:,} bytes, over {max_bytes:,}")
        else:
            middle = (start + stop) // 2
            pending.extend([(middle, stop), (start, middle)])
    if len(runs) > MAX_CHUNKS:
        raise UsageError(f"{len(runs):,} chunks is over the limit of {MAX_CHUNKS:,}")

    chunks = []
    for index, (start, stop) in enumerate(runs):
        built = event(start, stop, Chunk(index=index, count=len(runs)))
        value = encode_request_event(built)
        try:
            decode_request_event(value)
        except InvalidEvent as error:
            raise UsageError(f"chunk {index} is not a valid request event: {error}") from None
        chunks.append(EncodedChunk(built, value, start, stop))
    return chunks
