"""Reading the Kirim GET answers: the accounts list, `/v1/me`'s limits, one message (pure).

The contract fixes the fields but not always their JSON types, and another Kirim
(or a stand-in for it) may send `"600"` for 600, `1000.0` for a tier or `"Connected"`
for a status. So every field is read leniently: the encodings the contract allows
are accepted, a value that makes no sense becomes None, and only what a caller
cannot do without (the list itself, an account's id, a message's status) makes an
answer unreadable. One account that cannot be read is left out, not the list.
Unreadable answers raise `msgspec.DecodeError` (or its `ValidationError`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Final, TypeVar

import msgspec

from consumer.dispatch.tiers import parse_tier

CONNECTED: Final = "connected"
_UNKNOWN_STATUS: Final = "unknown"
# Meta's numeric id: anything else cannot be sent from, stored or put in a URL.
_PHONE_NUMBER_ID: Final = re.compile(r"[0-9]{6,20}")
# Meta's error codes are a few digits; the bound keeps the value a bigint.
_MAX_CODE_DIGITS: Final = 18


def normal_status(status: str) -> str:
    return status.strip().lower()


@dataclass(frozen=True, slots=True)
class Account:
    """One account from `GET /v1/accounts`; `tier` is None when absent or unreadable."""

    phone_number_id: str
    status: str
    # Unique recipients per rolling window; None when the API does not say.
    tier: int | None
    quality_rating: str | None = None

    @property
    def connected(self) -> bool:
        # Normalised again: an Account may be built by hand, not only by the parser.
        return normal_status(self.status) == CONNECTED


@dataclass(frozen=True, slots=True)
class AccountList:
    accounts: list[Account]
    # Why each left-out item could not be read, in list order.
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MessageState:
    """`GET /v1/{phone_number_id}/messages/{id}`: where the API says a message is."""

    status: str | None
    error_code: str | None
    provider_code: int | None
    # The recipient, when the API says (E.164).
    to: str | None = None


# Fields a caller can do without are kept raw and read one by one, so that a value
# msgspec refuses even as `object` (a number beyond a double, 1e400) costs only itself.
# Absent is an empty Raw: msgspec reads `Raw | None` as "null only".
_ABSENT: Final = msgspec.Raw()


class _AccountItem(msgspec.Struct):
    phone_number_id: str | int
    status: msgspec.Raw = _ABSENT
    messaging_tier: msgspec.Raw = _ABSENT
    quality_rating: msgspec.Raw = _ABSENT


class _AccountsBody(msgspec.Struct):
    data: list[msgspec.Raw]


class _RateLimits(msgspec.Struct):
    write_per_minute: msgspec.Raw = _ABSENT
    read_per_minute: msgspec.Raw = _ABSENT


class _MeData(msgspec.Struct):
    rate_limits: msgspec.Raw = _ABSENT


class _MeBody(msgspec.Struct):
    data: _MeData


class _MessageError(msgspec.Struct):
    code: msgspec.Raw = _ABSENT
    provider_code: msgspec.Raw = _ABSENT


class _MessageData(msgspec.Struct):
    status: str | None = None
    to: msgspec.Raw = _ABSENT
    error: msgspec.Raw = _ABSENT


class _MessageBody(msgspec.Struct):
    data: _MessageData


_accounts_decoder: Final = msgspec.json.Decoder(_AccountsBody)
_item_decoder: Final = msgspec.json.Decoder(_AccountItem)
_me_decoder: Final = msgspec.json.Decoder(_MeBody)
_limits_decoder: Final = msgspec.json.Decoder(_RateLimits)
_message_decoder: Final = msgspec.json.Decoder(_MessageBody)
_error_decoder: Final = msgspec.json.Decoder(_MessageError)
_any_decoder: Final = msgspec.json.Decoder()
_T = TypeVar("_T")


def _part(decoder: msgspec.json.Decoder[_T], raw: msgspec.Raw) -> _T | None:
    """A field or nested object the caller can do without; None when absent or unreadable."""
    if not raw:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def _value(raw: msgspec.Raw) -> object:
    """The field's JSON value; None when absent, null or unreadable."""
    return _part(_any_decoder, raw)


def _text(raw: msgspec.Raw) -> str | None:
    value = _value(raw)
    return value if isinstance(value, str) else None


def _positive_number(value: object) -> float | None:
    """An int, a float or a numeric string as a finite number above 0; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int past a double
        return None
    return number if math.isfinite(number) and number > 0 else None


def per_minute(value: object) -> int | None:
    """A rate limit (requests per minute) as a whole number; None when it makes no sense.
    Rounded down: a fraction over is a token the bucket does not have."""
    number = _positive_number(value)
    return int(number) if number is not None and number >= 1 else None


def provider_code(value: object) -> int | None:
    """Meta's error code, given as an int or a string of digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > _MAX_CODE_DIGITS:
            return None
        value = int(text)
    if isinstance(value, int) and 0 < value < 10**_MAX_CODE_DIGITS:
        return value
    return None


def _account(raw: msgspec.Raw) -> Account | str:
    """The account in one list item, or why it cannot be used."""
    try:
        item = _item_decoder.decode(raw)
    except msgspec.DecodeError as error:
        return str(error)
    phone_number_id = str(item.phone_number_id).strip()
    if not _PHONE_NUMBER_ID.fullmatch(phone_number_id):
        return "phone_number_id is not 6-20 digits"
    status = _text(item.status)
    quality = (_text(item.quality_rating) or "").strip().upper()
    return Account(
        phone_number_id=phone_number_id,
        status=normal_status(status) if status is not None else _UNKNOWN_STATUS,
        tier=parse_tier(_value(item.messaging_tier)),
        quality_rating=quality or None,
    )


class SkippedAccounts:
    """What to report of the items a listing left out: each change once, not every
    refresh (the same odd item comes back each time)."""

    def __init__(self) -> None:
        self._last: list[str] = []

    def news(self, listing: AccountList) -> list[str]:
        """The listing's skipped items when they differ from the last listing's; else []."""
        changed = listing.skipped != self._last
        self._last = listing.skipped
        return listing.skipped if changed else []


def parse_accounts(body: bytes) -> AccountList:
    """The accounts in a `GET /v1/accounts` body. Raises `msgspec.DecodeError` only when
    the body has no `data` list; an item that cannot be read is left out and named in
    `skipped`."""
    accounts: list[Account] = []
    skipped: list[str] = []
    for raw in _accounts_decoder.decode(body).data:
        account = _account(raw)
        if isinstance(account, Account):
            accounts.append(account)
        else:
            skipped.append(account)
    return AccountList(accounts, skipped)


def parse_rate_limits(body: bytes) -> tuple[int | None, int | None]:
    """(write, read) requests per minute from a `GET /v1/me` body; None where it does
    not say, or says something that is not a rate."""
    limits = _part(_limits_decoder, _me_decoder.decode(body).data.rate_limits)
    if limits is None:
        return None, None
    return per_minute(_value(limits.write_per_minute)), per_minute(_value(limits.read_per_minute))


def parse_message(body: bytes) -> MessageState:
    """The message in a `GET .../messages/{id}` body. Only a `status` that is not a
    string (or null) makes it unreadable: it is the one field reconciliation acts on."""
    data = _message_decoder.decode(body).data
    error = _part(_error_decoder, data.error)
    return MessageState(
        status=normal_status(data.status) if data.status is not None else None,
        error_code=_text(error.code) if error else None,
        provider_code=provider_code(_value(error.provider_code)) if error else None,
        to=_text(data.to),
    )
