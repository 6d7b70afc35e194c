"""The committed JSON Schema file is generated from the types and must not go stale."""

from __future__ import annotations

import json
from pathlib import Path

from schemas import __main__ as cli
from schemas import export
from schemas.requests import REQUEST_EVENT_TYPES


def test_committed_schema_is_up_to_date() -> None:
    committed = export.SCHEMA_PATH.read_text(encoding="utf-8")

    assert committed == export.render(), (
        f"{export.SCHEMA_PATH.name} is stale: the request types changed. "
        f"Run `{export.REGENERATE_COMMAND}` (e.g. `.venv/bin/python -m schemas`) and commit it."
    )


def test_schema_is_deterministic_and_describes_every_event_type() -> None:
    text = export.render()

    assert text == export.render()
    assert text.endswith("}\n")
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == REQUEST_EVENT_TYPES
    # docstrings are dedented so every Python version writes the same file
    assert "\\n    " not in text


def test_write_reports_whether_it_changed_the_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"

    assert export.write(target) is True
    assert export.write(target) is False
    assert target.read_text(encoding="utf-8") == export.render()


def test_check_command_passes_on_the_committed_file() -> None:
    assert cli.main(["--check"]) == 0
