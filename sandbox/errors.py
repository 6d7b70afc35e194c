"""Kirim's error envelope as values: `{"error": {type, code, message, param?, request_id}}`.

`ApiError` is data, not an exception: the pure modules return it and the shell
encodes it. `type` follows the HTTP status class (kirim-api.md, "Errors").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

# 4xx codes that depend only on the request, so an idempotent replay of them is
# correct; the rest depend on state that may change (a number reconnects, a key
# stops being in progress) and must not be replayed.
STORABLE_CODES: Final[frozenset[str]] = frozenset(
    {
        "invalid_request",
        "missing_required_field",
        "invalid_field_value",
        "invalid_phone_number",
        "invalid_template_name",
    }
)


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    code: str
    message: str
    param: str | None = None
    retry_after: int | None = None

    @property
    def type(self) -> str:
        fallback = "server_error" if self.status >= 500 else "invalid_request_error"
        return _TYPES.get(self.status, fallback)

    @property
    def storable(self) -> bool:
        return self.code in STORABLE_CODES


class _ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    code: str
    message: str
    request_id: str
    param: str | None = None


class _Envelope(msgspec.Struct, frozen=True):
    error: _ErrorBody


_encoder = msgspec.json.Encoder()


def encode_error(error: ApiError, request_id: str) -> bytes:
    body = _ErrorBody(
        type=error.type,
        code=error.code,
        message=error.message,
        request_id=request_id,
        param=error.param,
    )
    return _encoder.encode(_Envelope(error=body))


def invalid(code: str, message: str, param: str | None = None) -> ApiError:
    """A 400 for a request that can never succeed as sent."""
    return ApiError(400, code, message, param)


def missing(param: str) -> ApiError:
    return ApiError(400, "missing_required_field", f"{param} is required", param)


def bad_value(param: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field_value", message, param)
