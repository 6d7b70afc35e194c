"""Validation of `POST /v1/{phone_number_id}/messages` bodies, and the template check.

`parse_send(body)` checks the shape (synchronous 400s: `invalid_request`,
`missing_required_field`, `invalid_field_value`, `invalid_phone_number`) and
returns a `SendRequest`. `check_template(request, registry)` compares it with
the template registry: an unknown name or language is a 400
`invalid_template_name`; a paused/disabled template or a parameter mismatch is
a failure *code* (Meta reports those asynchronously; the engine may answer a
mismatch with a 400 instead when `param_mismatch` is "sync").

Accepted: `to` in E.164 with the leading `+`; `language` as a code string or
`{"code": ...}`; components `header` / `body` / `footer` / `button` with Meta's
parameter shapes; a button needs `sub_type` and a string `index`. Body
parameters are positional and must match the template's count exactly.
`type: "text"` is accepted and later fails `outside_24h_window`, as a
free-form message to a cold recipient does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sandbox.config import Template
from sandbox.errors import ApiError, bad_value, invalid, missing

E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LANGUAGE: Final = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
_INDEX: Final = re.compile(r"^[0-9]{1,2}$")
# Meta refuses parameter text with newlines, tabs or more than 4 spaces in a row.
_BAD_TEXT: Final = re.compile(r"[\n\t]| {5,}")
_MEDIA: Final = frozenset({"image", "video", "document"})
_PARAM_TYPES: Final = frozenset(
    {"text", "currency", "date_time", "image", "video", "document", "payload", "coupon_code"}
)
_COMPONENT_TYPES: Final = frozenset({"header", "body", "footer", "button"})
_BUTTON_SUB_TYPES: Final = frozenset({"quick_reply", "url", "copy_code", "catalog", "flow"})
MAX_COMPONENTS: Final = 10
MAX_PARAMETERS: Final = 100


@dataclass(frozen=True, slots=True)
class SendRequest:
    to: str
    type: str
    template_name: str | None
    language: str | None
    body_params: int
    header_types: tuple[str, ...]
    # Some text parameter breaks Meta's format rules (an async failure).
    bad_format: bool


def parse_send(body: Any) -> SendRequest | ApiError:
    if not isinstance(body, dict):
        return invalid("invalid_request", "the request body must be a JSON object")
    product = body.get("messaging_product")
    if product is None:
        return missing("messaging_product")
    if product != "whatsapp":
        return bad_value("messaging_product", "messaging_product must be 'whatsapp'")
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        return bad_value("recipient_type", "recipient_type must be 'individual'")
    to = body.get("to")
    if to is None:
        return missing("to")
    if not isinstance(to, str) or not E164.match(to):
        return invalid("invalid_phone_number", "to must be E.164 with a leading '+'", "to")
    kind = body.get("type")
    if kind is None:
        return missing("type")
    if kind == "text":
        return _parse_text(body, to)
    if kind != "template":
        return bad_value("type", "type must be 'template' (or 'text')")
    return _parse_template(body.get("template"), to)


def _parse_text(body: dict[str, Any], to: str) -> SendRequest | ApiError:
    text = body.get("text")
    if text is None:
        return missing("text")
    if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"]:
        return bad_value("text.body", "text.body must be a non-empty string")
    return SendRequest(to, "text", None, None, 0, (), bad_format=False)


def _parse_template(template: Any, to: str) -> SendRequest | ApiError:
    if template is None:
        return missing("template")
    if not isinstance(template, dict):
        return bad_value("template", "template must be an object")
    name = template.get("name")
    if name is None:
        return missing("template.name")
    if not isinstance(name, str) or not name:
        return bad_value("template.name", "template.name must be a non-empty string")
    language = _language(template.get("language"))
    if isinstance(language, ApiError):
        return language
    components = template.get("components", [])
    if not isinstance(components, list) or len(components) > MAX_COMPONENTS:
        return bad_value("template.components", f"components must be a list of <= {MAX_COMPONENTS}")
    body_params = 0
    header_types: list[str] = []
    bad_format = False
    for index, component in enumerate(components):
        where = f"template.components[{index}]"
        checked = _component(component, where)
        if isinstance(checked, ApiError):
            return checked
        kind, types, bad = checked
        bad_format = bad_format or bad
        if kind == "body":
            body_params += len(types)
        elif kind == "header":
            header_types.extend(types)
    return SendRequest(to, "template", name, language, body_params, tuple(header_types), bad_format)


def _language(value: Any) -> str | ApiError:
    if value is None:
        return missing("template.language")
    code = value.get("code") if isinstance(value, dict) else value
    if isinstance(value, dict) and code is None:
        return missing("template.language.code")
    if not isinstance(code, str) or not _LANGUAGE.match(code):
        return bad_value("template.language", "language must be a code like 'id_ID' or {code}")
    return code


def _component(component: Any, where: str) -> tuple[str, list[str], bool] | ApiError:
    if not isinstance(component, dict):
        return bad_value(where, "a component must be an object")
    kind = component.get("type")
    if kind is None:
        return missing(f"{where}.type")
    if kind not in _COMPONENT_TYPES:
        return bad_value(f"{where}.type", "component type must be header, body, footer or button")
    if kind == "button":
        sub_type = component.get("sub_type")
        if sub_type is None:
            return missing(f"{where}.sub_type")
        if sub_type not in _BUTTON_SUB_TYPES:
            return bad_value(f"{where}.sub_type", "unknown button sub_type")
        button_index = component.get("index")
        if button_index is None:
            return missing(f"{where}.index")
        if not isinstance(button_index, str) or not _INDEX.match(button_index):
            return bad_value(f"{where}.index", "a button index must be a string like '0'")
    parameters = component.get("parameters", [])
    if not isinstance(parameters, list) or len(parameters) > MAX_PARAMETERS:
        return bad_value(f"{where}.parameters", "parameters must be a list")
    types: list[str] = []
    bad_format = False
    for index, parameter in enumerate(parameters):
        checked = _parameter(parameter, f"{where}.parameters[{index}]")
        if isinstance(checked, ApiError):
            return checked
        kind_of_param, bad = checked
        types.append(kind_of_param)
        bad_format = bad_format or bad
    return kind, types, bad_format


def _parameter(parameter: Any, where: str) -> tuple[str, bool] | ApiError:
    if not isinstance(parameter, dict):
        return bad_value(where, "a parameter must be an object")
    kind = parameter.get("type")
    if kind is None:
        return missing(f"{where}.type")
    if kind not in _PARAM_TYPES:
        return bad_value(f"{where}.type", "unknown parameter type")
    value = parameter.get(kind)
    if value is None:
        return missing(f"{where}.{kind}")
    if kind in _MEDIA:
        if not isinstance(value, dict) or not (
            isinstance(value.get("link"), str) or isinstance(value.get("id"), str)
        ):
            return bad_value(f"{where}.{kind}", f"{kind} needs a 'link' or an 'id'")
        return kind, False
    if kind in {"currency", "date_time"}:
        if not isinstance(value, dict) or not isinstance(value.get("fallback_value"), str):
            return bad_value(f"{where}.{kind}", f"{kind} needs a 'fallback_value'")
        return kind, False
    if not isinstance(value, str):
        return bad_value(f"{where}.{kind}", f"{kind} must be a string")
    return kind, kind == "text" and (not value.strip() or bool(_BAD_TEXT.search(value)))


def check_template(request: SendRequest, registry: Mapping[str, Template]) -> ApiError | str | None:
    """None when the send matches its template; an ApiError (sync) or a failure code (async)."""
    if request.type != "template" or request.template_name is None:
        return None
    template = registry.get(request.template_name)
    if template is None:
        return invalid(
            "invalid_template_name",
            f"template {request.template_name!r} does not exist",
            "template.name",
        )
    if request.language not in template.languages:
        return invalid(
            "invalid_template_name",
            f"template {request.template_name!r} has no {request.language!r} translation",
            "template.language",
        )
    if template.status != "approved":
        return f"template_{template.status}"
    expected_header = () if template.header == "none" else (template.header,)
    if request.body_params != template.body_params or len(request.header_types) != len(
        expected_header
    ):
        return "template_param_count_mismatch"
    if request.header_types != expected_header or request.bad_format:
        return "template_param_format_mismatch"
    return None
