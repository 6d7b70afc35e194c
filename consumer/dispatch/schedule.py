"""Fair sharing of one sender between its campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def interleave(batches: Sequence[Sequence[T]]) -> list[T]:
    """Round-robin across campaigns: a, b, c, a, b, c, ... so none starves another."""
    merged: list[T] = []
    for position in range(max((len(batch) for batch in batches), default=0)):
        merged.extend(batch[position] for batch in batches if position < len(batch))
    return merged
