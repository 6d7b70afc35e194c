"""The JSON Schema of `broadcast.requests` events, for producers in other languages.

Public contract: `schemas/broadcast-request.schema.json` is generated from the
types in `schemas.requests` by `python -m schemas` and committed; a test fails
when it is stale. The output is deterministic (sorted keys, two-space indent,
trailing newline, docstrings dedented) so regenerating an unchanged schema is a
no-op in git.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Final

import msgspec

from schemas.requests import RequestEvent

SCHEMA_PATH: Final = Path(__file__).with_name("broadcast-request.schema.json")
REGENERATE_COMMAND: Final = "python -m schemas"


def _dedent_descriptions(node: Any) -> Any:
    # msgspec copies docstrings verbatim, and Python 3.13+ strips their
    # indentation at compile time while 3.11 does not: dedent so every
    # interpreter writes the same file.
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _dedent_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_dedent_descriptions(item) for item in node]
    return node


def request_event_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one `broadcast.requests` message value."""
    schema: dict[str, Any] = _dedent_descriptions(msgspec.json.schema(RequestEvent))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "broadcast.requests event",
        "description": (
            "One message on the `broadcast.requests` topic, tagged by `type`. "
            "Unknown fields are ignored; fields are added, never renamed. "
            "Each message must be at most 1 MiB; a big audience is split into chunks "
            "of one campaign (see `Chunk` for how to cut them). "
            f"Generated from schemas/requests.py by `{REGENERATE_COMMAND}`; do not edit."
        ),
        **schema,
    }


def render() -> str:
    """The schema file's exact text."""
    text = json.dumps(request_event_schema(), indent=2, sort_keys=True, ensure_ascii=False)
    return text + "\n"


def write(path: Path = SCHEMA_PATH) -> bool:
    """Write the schema file; True when its content changed."""
    text = render()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
