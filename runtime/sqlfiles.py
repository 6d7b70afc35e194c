"""Named SQL queries kept in `.sql` files, loaded once at import of the store that uses them.

A file holds sections introduced by `-- name: query_name`; the text up to the next
marker is that query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

_MARKER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load_queries(path: Path) -> Mapping[str, str]:
    text = path.read_text(encoding="utf-8")
    parts = _MARKER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{path.name}: query {name!r} is defined twice")
        queries[name] = body.strip()
    return MappingProxyType(queries)
