"""Strict decoding that turns every msgspec failure into one `InvalidEvent`.

`decode(decoder, raw, max_bytes=..., value_reasons=...)` checks the size first,
decodes once, and only on failure works out the reason code (the happy path
pays nothing for diagnosis):

- more than `max_bytes` bytes -> `too_large` (checked before parsing anything);
- `msgspec.DecodeError` that is not a `ValidationError`, JSON nested deeper
  than the decoder's recursion limit, or a `ValidationError` on input that is
  not valid JSON further on -> `invalid_json`;
- a `ValidationError` raised by a Struct's `__post_init__` with an
  `InvalidEvent` as its cause -> that event's reason, with msgspec's path;
- a value-rule `ValidationError` (a constraint, enum or tag that did not match,
  not a wrong JSON type) at or under a path listed in `value_reasons` -> that
  reason;
- any other `ValidationError` -> `schema_violation`.

The detail always ends with the JSON path (`- at `$...``), `$` for the root.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TypeVar

import msgspec

from schemas.errors import InvalidEvent, Reason

T = TypeVar("T")

# msgspec's messages end with " - at `$.a[1].b`" (or " - at `key` in `$.a`" for
# a bad dict key); root-level messages have no suffix. Parsing the suffix is the
# only way to get the path: msgspec exposes it only inside the message.
_PATH_SUFFIX: Final = re.compile(r" - at (?:`key` in )?`(?P<path>\$[^`]*)`$")
# Shape errors: a wrong JSON type ("Expected `str`", "Expected `str`, got `int`")
# or a missing field. Value-rule failures read otherwise ("Expected `int` >= 0",
# "Invalid enum value", "Invalid value 'x'").
_SHAPE_ERROR: Final = re.compile(r"^(?:Expected `[^`]+`(?:, got `[^`]+`)?|Object missing .*)$")


def split_path(message: str) -> tuple[str, str, str]:
    """Split a msgspec error message into (message, location suffix, JSON path).

    The suffix is msgspec's own (" - at `$.a`" or " - at `key` in `$.a`"), or
    " - at `$`" for root-level messages, which have none.
    """
    match = _PATH_SUFFIX.search(message)
    if match is None:
        return message, " - at `$`", "$"
    return message[: match.start()], match[0], match["path"]


# Skips values without building them: a cheap syntax check of the whole input.
_SYNTAX: Final = msgspec.json.Decoder(msgspec.Raw)
_TOO_DEEP: Final = "JSON is nested too deeply to decode"


def _syntax_error(raw: bytes) -> InvalidEvent | None:
    # msgspec stops at the first schema error, possibly before bytes that are not
    # JSON at all (`{} x`); those are `invalid_json`, whatever came first.
    try:
        _SYNTAX.decode(raw)
    except msgspec.DecodeError as exc:
        return InvalidEvent("invalid_json", str(exc))
    except RecursionError:
        return InvalidEvent("invalid_json", _TOO_DEEP)
    return None


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _from_validation(
    exc: msgspec.ValidationError, value_reasons: Mapping[str, Reason]
) -> InvalidEvent:
    message, suffix, path = split_path(str(exc))
    cause = exc.__cause__
    if isinstance(cause, InvalidEvent):
        return InvalidEvent(cause.reason, cause.detail + suffix)
    detail = message + suffix
    if not _SHAPE_ERROR.match(message):
        for prefix, reason in value_reasons.items():
            if _under(path, prefix):
                return InvalidEvent(reason, detail)
    return InvalidEvent("schema_violation", detail)


def decode(
    decoder: msgspec.json.Decoder[T],
    raw: bytes,
    *,
    max_bytes: int,
    value_reasons: Mapping[str, Reason] | None = None,
) -> T:
    """Decode `raw` with `decoder`, raising only `InvalidEvent` (see the module docstring)."""
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", f"{len(raw)} bytes is over the limit of {max_bytes} bytes")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise (_syntax_error(raw) or _from_validation(exc, value_reasons or {})) from exc
    except msgspec.DecodeError as exc:
        raise InvalidEvent("invalid_json", str(exc)) from exc
    except RecursionError as exc:
        # msgspec bounds nesting with Python's recursion limit, even inside
        # unknown fields it skips: still not JSON we can accept.
        raise InvalidEvent("invalid_json", _TOO_DEEP) from exc
