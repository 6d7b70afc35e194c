"""`{{name}}` substitution in a template's parameters, compiled once per chunk.

Placeholders are replaced in the text of `text` parameters and in `payload`
parameters (quick-reply buttons); media links, button `sub_type`/`index` and
everything else pass through untouched. `{{ name }}` with inner spaces is the
same placeholder as `{{name}}`. A recipient cannot be rendered (None) when a
variable is absent, holds a NUL (PostgreSQL cannot store it), or leaves a
parameter blank (Meta refuses empty parameters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from schemas.template import Template

_PLACEHOLDER: Final = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_RENDERED_FIELDS: Final = {"text": "text", "payload": "payload"}
_encoder: Final = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class _Slot:
    component: int
    parameter: int
    field: str
    # Alternating literal text and variable names: [text, name, text, name, text].
    pieces: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template's components as JSON-ready values, and where its placeholders are."""

    components: list[dict[str, Any]]
    slots: tuple[_Slot, ...]

    @property
    def has_variables(self) -> bool:
        return bool(self.slots)


def compile_template(template: Template) -> CompiledTemplate:
    components: list[dict[str, Any]] = msgspec.to_builtins(template.components)
    slots = []
    for ci, component in enumerate(components):
        for pi, parameter in enumerate(component.get("parameters", ())):
            field = _RENDERED_FIELDS.get(parameter.get("type", ""))
            if field is None:
                continue
            pieces = tuple(_PLACEHOLDER.split(parameter[field]))
            if len(pieces) > 1:
                slots.append(_Slot(ci, pi, field, pieces))
    return CompiledTemplate(components=components, slots=tuple(slots))


def _fill(pieces: Sequence[str], variables: Mapping[str, str]) -> str | None:
    parts = [pieces[0]]
    for i in range(1, len(pieces), 2):
        value = variables.get(pieces[i])
        if value is None or "\x00" in value:
            return None
        parts.append(value)
        parts.append(pieces[i + 1])
    text = "".join(parts)
    return text if text.strip() else None


def render(compiled: CompiledTemplate, variables: Mapping[str, str]) -> list[dict[str, Any]] | None:
    """The components with this recipient's variables filled in, or None (see module doc)."""
    out = list(compiled.components)
    copied: set[int] = set()
    for slot in compiled.slots:
        text = _fill(slot.pieces, variables)
        if text is None:
            return None
        if slot.component not in copied:
            component = out[slot.component]
            out[slot.component] = {**component, "parameters": list(component["parameters"])}
            copied.add(slot.component)
        parameters = out[slot.component]["parameters"]
        parameters[slot.parameter] = {**parameters[slot.parameter], slot.field: text}
    return out


def render_json(compiled: CompiledTemplate, variables: Mapping[str, str]) -> str | None:
    """`render` encoded as JSON text, ready for a jsonb column."""
    rendered = render(compiled, variables)
    return None if rendered is None else _encoder.encode(rendered).decode()
