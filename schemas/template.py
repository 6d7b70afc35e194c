"""The `template` block of a broadcast request: which approved template, in what language.

Public contract: components and their parameters keep the shape Meta's Cloud
API uses (Kirim passes them through unchanged), so the consumer can forward
them after replacing `{{name}}` placeholders in parameter text with the
recipient's variables. Body parameters are positional; header parameters are
text or media (`image`/`video`/`document` with a `link`); button parameters
need `sub_type` and a string `index`.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from msgspec import Meta, Struct

from schemas.errors import InvalidEvent

TemplateName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=512,
        pattern=r"^[a-z0-9_]+$",
        description="Meta template name: lowercase letters, digits and underscores.",
    ),
]
LanguageCode = Annotated[
    str,
    Meta(
        pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
        description="Template language code, e.g. `id_ID`, `en`, `en_US`.",
    ),
]
# Meta caps a body at 1,024 characters, so no single parameter can be longer.
ParameterText = Annotated[str, Meta(min_length=1, max_length=1024)]
Url = Annotated[str, Meta(min_length=1, max_length=2048, pattern=r"^https?://")]


# Shared config; subclasses repeat frozen/kw_only because mypy reads them per class.
class _Struct(Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


class MediaLink(_Struct, frozen=True, kw_only=True):
    """A publicly reachable media URL."""

    link: Url


class DocumentLink(MediaLink, frozen=True, kw_only=True):
    """A document URL and the file name shown to the recipient."""

    filename: Annotated[str, Meta(min_length=1, max_length=240)] | None = None


class _Parameter(_Struct, tag_field="type", frozen=True, kw_only=True):
    pass


class TextParameter(_Parameter, tag="text", frozen=True, kw_only=True):
    """Text; `{{name}}` is replaced by the recipient's variable `name`."""

    text: ParameterText


class ImageParameter(_Parameter, tag="image", frozen=True, kw_only=True):
    """A header image."""

    image: MediaLink


class VideoParameter(_Parameter, tag="video", frozen=True, kw_only=True):
    """A header video."""

    video: MediaLink


class DocumentParameter(_Parameter, tag="document", frozen=True, kw_only=True):
    """A header document."""

    document: DocumentLink


class PayloadParameter(_Parameter, tag="payload", frozen=True, kw_only=True):
    """The payload of a quick-reply button."""

    payload: ParameterText


Parameter: TypeAlias = (
    TextParameter | ImageParameter | VideoParameter | DocumentParameter | PayloadParameter
)


class Component(_Struct, frozen=True, kw_only=True):
    """One template component and its parameters, in Meta's order."""

    type: Literal["header", "body", "button", "footer"]
    parameters: Annotated[list[Parameter], Meta(max_length=100)] = []
    sub_type: (
        Annotated[
            str,
            Meta(
                pattern=r"^[a-z_]{1,32}$",
                description="Button kind (`quick_reply`, `url`, ...); buttons only.",
            ),
        ]
        | None
    ) = None
    index: (
        Annotated[
            str,
            Meta(pattern=r"^[0-9]{1,2}$", description="Button position as a string; buttons only."),
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        # Meta rejects a button without these for every recipient: fail once, here.
        if self.type == "button" and (self.sub_type is None or self.index is None):
            raise InvalidEvent(
                "schema_violation", "a `button` component needs both `sub_type` and `index`"
            )


class Template(_Struct, frozen=True, kw_only=True):
    """An approved template: its name, language and parameterised components."""

    name: TemplateName
    language: LanguageCode
    components: Annotated[list[Component], Meta(max_length=20)] = []
