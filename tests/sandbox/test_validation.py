"""Send validation and the template check, without HTTP: one row per rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.config import Template
from sandbox.errors import ApiError
from sandbox.validation import SendRequest, check_template, parse_send
from tests.sandbox.conftest import template_body

REGISTRY = {
    "promo_flash_sale": Template(),
    "two_params": Template(body_params=2, languages=("en_US", "id_ID")),
    "with_image": Template(body_params=0, header="image"),
    "paused_one": Template(status="paused"),
    "disabled_one": Template(status="disabled"),
}


def body_with(path: str, value: Any) -> dict[str, Any]:
    """The default template body with one field set (`...` deletes it)."""
    body = copy.deepcopy(template_body())
    *parents, leaf = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[leaf]
    else:
        node[int(leaf) if leaf.isdigit() else leaf] = value
    return body


SYNC_ERRORS = [
    ("not an object", [1, 2], "invalid_request", None),
    (
        "no product",
        body_with("messaging_product", ...),
        "missing_required_field",
        "messaging_product",
    ),
    (
        "bad product",
        body_with("messaging_product", "sms"),
        "invalid_field_value",
        "messaging_product",
    ),
    (
        "group recipient",
        body_with("recipient_type", "group"),
        "invalid_field_value",
        "recipient_type",
    ),
    ("no to", body_with("to", ...), "missing_required_field", "to"),
    ("to without plus", body_with("to", "628111222333"), "invalid_phone_number", "to"),
    ("to too short", body_with("to", "+62811"), "invalid_phone_number", "to"),
    ("to with letters", body_with("to", "+62811abc2333"), "invalid_phone_number", "to"),
    ("to a number", body_with("to", 628111222333), "invalid_phone_number", "to"),
    ("no type", body_with("type", ...), "missing_required_field", "type"),
    ("image type", body_with("type", "image"), "invalid_field_value", "type"),
    ("no template", body_with("template", ...), "missing_required_field", "template"),
    ("template a string", body_with("template", "promo"), "invalid_field_value", "template"),
    ("no name", body_with("template.name", ...), "missing_required_field", "template.name"),
    ("empty name", body_with("template.name", ""), "invalid_field_value", "template.name"),
    (
        "no language",
        body_with("template.language", ...),
        "missing_required_field",
        "template.language",
    ),
    (
        "language no code",
        body_with("template.language", {}),
        "missing_required_field",
        "template.language.code",
    ),
    (
        "language a number",
        body_with("template.language", 7),
        "invalid_field_value",
        "template.language",
    ),
    (
        "components a dict",
        body_with("template.components", {}),
        "invalid_field_value",
        "template.components",
    ),
    (
        "component no type",
        body_with("template.components.0.type", ...),
        "missing_required_field",
        "template.components[0].type",
    ),
    (
        "component bad type",
        body_with("template.components.0.type", "hero"),
        "invalid_field_value",
        "template.components[0].type",
    ),
    (
        "parameter no type",
        body_with("template.components.0.parameters", [{"text": "x"}]),
        "missing_required_field",
        "template.components[0].parameters[0].type",
    ),
    (
        "parameter no text",
        body_with("template.components.0.parameters", [{"type": "text"}]),
        "missing_required_field",
        "template.components[0].parameters[0].text",
    ),
    (
        "parameter text a number",
        body_with("template.components.0.parameters", [{"type": "text", "text": 5}]),
        "invalid_field_value",
        "template.components[0].parameters[0].text",
    ),
    (
        "image without link",
        body_with("template.components.0.parameters", [{"type": "image", "image": {}}]),
        "invalid_field_value",
        "template.components[0].parameters[0].image",
    ),
    (
        "button no sub_type",
        body_with("template.components", [{"type": "button", "index": "0"}]),
        "missing_required_field",
        "template.components[0].sub_type",
    ),
    (
        "button int index",
        body_with("template.components", [{"type": "button", "sub_type": "url", "index": 0}]),
        "invalid_field_value",
        "template.components[0].index",
    ),
    (
        "text without body",
        {"messaging_product": "whatsapp", "to": "+628111222333", "type": "text", "text": {}},
        "invalid_field_value",
        "text.body",
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [(body, code, param) for _, body, code, param in SYNC_ERRORS],
    ids=[name for name, *_ in SYNC_ERRORS],
)
def test_shape_errors_are_400s_with_code_and_param(body: Any, code: str, param: str | None) -> None:
    result = parse_send(body)
    assert isinstance(result, ApiError)
    assert (result.status, result.code, result.param) == (400, code, param)
    assert result.storable


ACCEPTED = [
    ("language as string", body_with("template.language", "id_ID"), None),
    ("language as object", template_body(), None),
    (
        "no components when none needed",
        body_with("template.components", []),
        "template_param_count_mismatch",
    ),
    ("two params for one", template_body(params=("a", "b")), "template_param_count_mismatch"),
    ("zero params for one", template_body(params=()), "template_param_count_mismatch"),
    ("newline in a param", template_body(params=("a\nb",)), "template_param_format_mismatch"),
    (
        "five spaces in a param",
        template_body(params=("a     b",)),
        "template_param_format_mismatch",
    ),
    ("blank param", template_body(params=("  ",)), "template_param_format_mismatch"),
    ("two for two", template_body(name="two_params", params=("a", "b")), None),
    ("paused", template_body(name="paused_one"), "template_paused"),
    ("disabled", template_body(name="disabled_one"), "template_disabled"),
    (
        "image header given",
        body_with(
            "template",
            {
                "name": "with_image",
                "language": "id_ID",
                "components": [
                    {
                        "type": "header",
                        "parameters": [{"type": "image", "image": {"link": "https://x/y.png"}}],
                    },
                    {
                        "type": "button",
                        "sub_type": "quick_reply",
                        "index": "0",
                        "parameters": [{"type": "payload", "payload": "STOP"}],
                    },
                ],
            },
        ),
        None,
    ),
    (
        "text header for an image template",
        body_with(
            "template",
            {
                "name": "with_image",
                "language": "id_ID",
                "components": [{"type": "header", "parameters": [{"type": "text", "text": "x"}]}],
            },
        ),
        "template_param_format_mismatch",
    ),
    (
        "image template without header",
        body_with("template", {"name": "with_image", "language": "id_ID"}),
        "template_param_count_mismatch",
    ),
]


@pytest.mark.parametrize(
    ("body", "verdict"), [(b, v) for _, b, v in ACCEPTED], ids=[n for n, _, _ in ACCEPTED]
)
def test_template_check_verdicts(body: dict[str, Any], verdict: str | None) -> None:
    request = parse_send(body)
    assert isinstance(request, SendRequest)
    assert check_template(request, REGISTRY) == verdict


@pytest.mark.parametrize(
    ("name", "language", "param"),
    [("nope", "id_ID", "template.name"), ("promo_flash_sale", "en_US", "template.language")],
)
def test_unknown_template_or_translation_is_invalid_template_name(
    name: str, language: str, param: str
) -> None:
    body = template_body(name=name)
    body["template"]["language"] = language
    request = parse_send(body)
    assert isinstance(request, SendRequest)
    verdict = check_template(request, REGISTRY)
    assert isinstance(verdict, ApiError)
    assert (verdict.status, verdict.code, verdict.param) == (400, "invalid_template_name", param)


def test_text_messages_pass_the_template_check() -> None:
    request = parse_send(
        {
            "messaging_product": "whatsapp",
            "to": "+628111222333",
            "type": "text",
            "text": {"body": "hi"},
        }
    )
    assert isinstance(request, SendRequest)
    assert request.type == "text"
    assert check_template(request, REGISTRY) is None


@settings(deadline=None)
@given(st.text(alphabet="+0123456789", min_size=1, max_size=18))
def test_only_e164_with_plus_is_accepted(to: str) -> None:
    result = parse_send(body_with("to", to))
    valid = to.startswith("+") and to[1:].isdigit() and to[1] != "0" and 7 <= len(to) - 1 <= 15
    assert isinstance(result, SendRequest) == valid


@settings(deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=3),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "type",
                        "to",
                        "template",
                        "name",
                        "language",
                        "components",
                        "parameters",
                        "text",
                        "messaging_product",
                        "code",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=15,
    )
)
def test_any_json_gets_a_request_or_a_400_never_an_exception(body: Any) -> None:
    result = parse_send(body)
    if isinstance(result, ApiError):
        assert result.status == 400
    else:
        check_template(result, REGISTRY)
