"""The template of a `publish`: from flags, from a JSON file, or both.

- `--template-file spec.json`: a `schemas.Template` document (`name`, `language`,
  `components` in Meta's shape);
- `--template NAME` / `--language CODE` set (or override) the name and language;
- `--body-param TEXT` (repeatable) sets the body component's text parameters in
  order, replacing the file's body parameters if it had any.

`{{name}}` in a parameter is replaced per recipient by intake.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from cli.errors import UsageError
from consumer.intake.render import compile_template
from schemas.template import Template

_BODY: Final = "body"


def load_template(
    *,
    name: str | None,
    language: str | None,
    body_params: Sequence[str],
    file: Path | None,
) -> Template:
    """The template these flags describe; `UsageError` naming what is wrong."""
    document: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = msgspec.json.decode(file.read_bytes())
        except OSError as error:
            raise UsageError(f"cannot read {file}: {error.strerror or error}") from None
        except msgspec.DecodeError as error:
            raise UsageError(f"{file}: not JSON ({error})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{file}: expected a JSON object with name, language, components")
        document = loaded
    if name is not None:
        document["name"] = name
    if language is not None:
        document["language"] = language
    if "name" not in document:
        raise UsageError("no template: pass --template NAME or --template-file FILE")
    if "language" not in document:
        raise UsageError("no template language: pass --language CODE (e.g. id_ID)")
    if body_params:
        document["components"] = _with_body(document.get("components", []), body_params)
    try:
        return msgspec.convert(document, Template)
    except msgspec.ValidationError as error:
        where = f" in {file}" if file is not None else ""
        raise UsageError(f"invalid template{where}: {error}") from None


def _with_body(components: object, body_params: Sequence[str]) -> list[Any]:
    if not isinstance(components, list):
        raise UsageError("template components must be a JSON array")
    body = {"type": _BODY, "parameters": [{"type": "text", "text": p} for p in body_params]}
    replaced = [body if _is_body(c) else c for c in components]
    return replaced if any(_is_body(c) for c in components) else [*components, body]


def _is_body(component: object) -> bool:
    return isinstance(component, dict) and component.get("type") == _BODY


def template_variables(template: Template) -> set[str]:
    """The variable names the template's `{{name}}` placeholders use."""
    # compile_template's slots alternate literal text and variable names.
    return {name for slot in compile_template(template).slots for name in slot.pieces[1::2]}
