"""Accepted messages, in memory, oldest evicted past `max_messages`.

A message never changes after it is accepted: its status at any time comes
from its timeline. Pages run in acceptance order; the cursor is the last
message's sequence number.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from sandbox.catalog import Failure
from sandbox.timeline import Timeline


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    seq: int
    phone_number_id: str
    to: str
    template: str | None
    language: str | None
    created_at: float
    wamid: str
    timeline: Timeline
    failure: Failure | None
    idempotency_key: str | None


class MessageStore:
    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self._by_id: dict[str, Message] = {}
        # Acceptance order; `_head` skips evicted ids until the list is compacted.
        self._order: list[Message] = []
        self._head = 0
        self._next_seq = 1

    def __len__(self) -> int:
        return len(self._by_id)

    def next_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def add(self, message: Message) -> None:
        self._by_id[message.id] = message
        self._order.append(message)
        while len(self._by_id) > self.max_messages:
            evicted = self._order[self._head]
            self._head += 1
            del self._by_id[evicted.id]
        if self._head > 1024 and self._head * 2 > len(self._order):
            del self._order[: self._head]
            self._head = 0

    def get(self, message_id: str) -> Message | None:
        return self._by_id.get(message_id)

    def after(self, seq: int) -> Iterator[Message]:
        """Messages accepted after sequence number `seq`, in order."""
        order = self._order
        start = bisect.bisect_right(order, seq, lo=self._head, key=lambda message: message.seq)
        for index in range(start, len(order)):
            yield order[index]

    def clear(self) -> None:
        self._by_id.clear()
        self._order.clear()
        self._head = 0
