"""Chunks written to a temporary file between reading the audience and publishing it.

Why a spool: a chunk's event carries `chunk.count`, which is known only once the
whole audience has been read, and nothing may be published before every row has
been validated (one malformed row refuses the whole input). Keeping the chunks
in memory would cost the whole audience; re-reading the source would not work
for stdin, and a query could return other rows the second time. So the first
pass writes each chunk's recipients (their JSON array, as they go in the event)
to an unnamed temporary file (deleted when closed, even on a crash: it has no
name), and the second reads them back one at a time. Disk use is about the
size of the events (~100 bytes a recipient); memory is one chunk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO


class Spool:
    """An append-only sequence of byte strings on disk, read back in order."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
            prefix="broadcast-publish-"
        )
        self._lengths: list[int] = []
        self.nbytes = 0

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._lengths)

    def append(self, body: bytes) -> None:
        self._file.write(body)
        self._lengths.append(len(body))
        self.nbytes += len(body)

    def __iter__(self) -> Iterator[bytes]:
        self._file.flush()
        self._file.seek(0)
        for length in self._lengths:
            body = self._file.read(length)
            if len(body) != length:
                raise OSError(f"the publish spool is truncated ({len(body)} of {length} bytes)")
            yield body

    def close(self) -> None:
        self._file.close()
