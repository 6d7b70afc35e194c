"""A campaign's audience cut into request events, each well under Kafka's 1 MB (pure).

The rule (also in the JSON Schema's description, for producers in other
languages): recipients are packed greedily in audience order; a recipient joins
the open chunk unless that would put the chunk over `chunk_size` recipients or
its encoded event over `max_bytes`, in which case it starts the next chunk.
Sizes are exact: an event is its envelope (every field but the recipients,
measured with the widest possible `chunk` field) plus the recipients' encoded
JSON, so the final events can only be smaller than planned.

The cut depends only on the recipients, in order, and the budgets, never on
timing: the same input and flags give the same chunks, so a publish can be
repeated with the same campaign id and intake treats the chunks as
redeliveries. `Packer` does it one recipient at a time (bounded memory: one open
chunk); `build_chunks` is the same over a list.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import msgspec

from cli.errors import UsageError
from schemas.errors import InvalidEvent
from schemas.requests import (
    MAX_EVENT_BYTES,
    MAX_RECIPIENTS,
    BroadcastRequested,
    Chunk,
    Priority,
    QualityGuard,
    QuietHours,
    Recipient,
    Sender,
    decode_request_event,
    encode_request_event,
)
from schemas.template import Template

# The largest --chunk-bytes: 3/4 of the event limit leaves room for the record framing.
BYTES_LIMIT: Final = MAX_EVENT_BYTES * 3 // 4
DEFAULT_CHUNK_BYTES: Final = 512 * 1024
MIN_CHUNK_BYTES: Final = 4 * 1024
DEFAULT_CHUNK_SIZE: Final = 5_000
MAX_CHUNKS: Final = 100_000
# Kept for callers of the old name: the largest allowed event.
BYTES_BUDGET: Final = BYTES_LIMIT
_WIDEST: Final = Chunk(index=MAX_CHUNKS - 1, count=MAX_CHUNKS)
_recipient_encoder: Final = msgspec.json.Encoder()
_recipients_decoder: Final = msgspec.json.Decoder(list[Recipient])


@dataclass(frozen=True, slots=True)
class Budget:
    """The two limits every chunk keeps: recipients and encoded event bytes."""

    recipients: int = DEFAULT_CHUNK_SIZE
    bytes: int = DEFAULT_CHUNK_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.recipients <= MAX_RECIPIENTS:
            raise UsageError(f"--chunk-size must be between 1 and {MAX_RECIPIENTS:,}")
        if not MIN_CHUNK_BYTES <= self.bytes <= BYTES_LIMIT:
            raise UsageError(
                f"--chunk-bytes must be between {MIN_CHUNK_BYTES:,} and {BYTES_LIMIT:,}"
            )


@dataclass(frozen=True, slots=True)
class Campaign:
    """What every chunk of one campaign repeats."""

    campaign_id: uuid.UUID
    sender: Sender
    template: Template
    send_at: datetime | None = None
    quiet_hours: QuietHours | None = None
    priority: Priority = "bulk"
    quality_guard: QualityGuard | None = None

    def event(self, recipients: list[Recipient], chunk: Chunk) -> BroadcastRequested:
        return BroadcastRequested(
            campaign_id=self.campaign_id,
            sender=self.sender,
            template=self.template,
            recipients=recipients,
            chunk=chunk,
            send_at=self.send_at,
            priority=self.priority,
            quiet_hours=self.quiet_hours,
            quality_guard=self.quality_guard,
        )

    def envelope_bytes(self, chunk: Chunk) -> int:
        """The event's size without its recipients (`"recipients":[]` included)."""
        return len(encode_request_event(self.event([], chunk)))

    def event_bytes(self, chunk: Chunk, recipients: int, recipient_bytes: int) -> int:
        """The exact encoded size of a chunk event: envelope, recipients and commas."""
        return self.envelope_bytes(chunk) + recipient_bytes + max(recipients - 1, 0)


@dataclass(frozen=True, slots=True)
class Packed:
    """One closed chunk: its place in the audience and its recipients' JSON array."""

    index: int
    start: int
    stop: int
    recipient_bytes: int
    body: bytes
    recipients: list[Recipient]

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(slots=True)
class Packer:
    """Greedy packing one recipient at a time (see the module docstring)."""

    campaign: Campaign
    budget: Budget = field(default_factory=Budget)
    _envelope: int = 0
    _start: int = 0
    _bytes: int = 0
    _index: int = 0
    _encoded: list[bytes] = field(default_factory=list)
    _recipients: list[Recipient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._envelope = self.campaign.envelope_bytes(_WIDEST)

    def _fits(self, count: int, recipient_bytes: int) -> bool:
        return self._envelope + recipient_bytes + count - 1 <= self.budget.bytes

    def add(self, recipient: Recipient, where: str = "a recipient") -> Packed | None:
        """Add the next recipient; the chunk it closed, if it did not fit the open one."""
        encoded = _recipient_encoder.encode(recipient)
        size = len(encoded)
        if not self._fits(1, size):
            raise UsageError(
                f"{where}: the recipient alone makes a {self._envelope + size:,}-byte event, "
                f"over --chunk-bytes {self.budget.bytes:,}"
            )
        closed = None
        count = len(self._encoded)
        if count and (
            count == self.budget.recipients or not self._fits(count + 1, self._bytes + size)
        ):
            closed = self._close()
        self._encoded.append(encoded)
        self._recipients.append(recipient)
        self._bytes += size
        return closed

    def finish(self) -> Packed | None:
        """The last, partly filled chunk (None when nothing is open)."""
        return self._close() if self._encoded else None

    @property
    def chunks(self) -> int:
        """Chunks closed so far."""
        return self._index

    def _close(self) -> Packed:
        if self._index >= MAX_CHUNKS:
            raise UsageError(f"more than {MAX_CHUNKS:,} chunks: raise --chunk-size/--chunk-bytes")
        count = len(self._encoded)
        packed = Packed(
            index=self._index,
            start=self._start,
            stop=self._start + count,
            recipient_bytes=self._bytes,
            body=b"[" + b",".join(self._encoded) + b"]",
            recipients=self._recipients,
        )
        self._index += 1
        self._start += count
        self._bytes = 0
        self._encoded = []
        self._recipients = []
        return packed


def decode_body(body: bytes) -> list[Recipient]:
    """A packed chunk's recipients back from their JSON array (the spool's format)."""
    return _recipients_decoder.decode(body)


def encode_chunk(
    campaign: Campaign, recipients: list[Recipient], chunk: Chunk
) -> tuple[BroadcastRequested, bytes]:
    """The chunk's event and its bytes, checked with `decode_request_event` as schemas asks."""
    event = campaign.event(recipients, chunk)
    value = encode_request_event(event)
    try:
        decode_request_event(value)
    except InvalidEvent as error:
        raise UsageError(f"chunk {chunk.index} is not a valid request event: {error}") from None
    return event, value


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
    max_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[EncodedChunk]:
    """A whole (in-memory) audience as ordered request events."""
    if not recipients:
        raise UsageError("no recipients to publish")
    campaign = Campaign(campaign_id, sender, template, send_at)
    packer = Packer(campaign, Budget(chunk_size, max_bytes))
    packed = [
        closed
        for position, recipient in enumerate(recipients, start=1)
        if (closed := packer.add(recipient, f"recipient #{position}")) is not None
    ]
    last = packer.finish()
    if last is not None:
        packed.append(last)
    chunks = []
    for run in packed:
        chunk = Chunk(index=run.index, count=len(packed))
        event, value = encode_chunk(campaign, run.recipients, chunk)
        chunks.append(EncodedChunk(event, value, run.start, run.stop))
    return chunks
