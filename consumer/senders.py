"""`DISPATCH_SENDERS` checked against the Kirim accounts list, once, at start.

A number the organisation does not have is a typo in the configuration: the
dispatcher would own it and wait forever. When `GET /v1/accounts?status=all`
answers with a list, every number named must be in it, or start fails with a
`SettingsError` (exit 2). When the API does not answer (down, refusing, slow)
the check is skipped with a warning: an outage must not keep the service down.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from consumer.intake.accounts import AccountsClient
from consumer.intake.errors import AccountsRefused, AccountsUnavailable
from consumer.settings import ConsumerSettings
from runtime.env import SettingsError
from runtime.logs import get_logger

log = get_logger(__name__)


def unknown_senders(wanted: Iterable[str], listed: Iterable[str]) -> list[str]:
    """The numbers of `wanted` that the accounts list does not have, sorted."""
    return sorted(set(wanted) - set(listed))


async def check_senders(
    settings: ConsumerSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    """Raise `SettingsError` when `DISPATCH_SENDERS` names a number the API does not list."""
    wanted = settings.dispatch.only_senders
    if not settings.dispatcher_enabled or not wanted:
        return
    client = AccountsClient(
        settings.kirim_base_url,
        settings.kirim_api_key,
        timeout_seconds=settings.accounts_timeout_seconds,
        transport=transport,
    )
    try:
        accounts = await client.fetch()
    except (AccountsUnavailable, AccountsRefused) as error:
        log.warning("senders_not_checked", reason=str(error))
        return
    finally:
        await client.aclose()
    unknown = unknown_senders(wanted, (account.phone_number_id for account in accounts))
    if unknown:
        raise SettingsError(
            f"DISPATCH_SENDERS: {', '.join(unknown)} not among the organisation's numbers "
            f"(GET /v1/accounts?status=all lists {len(accounts)})"
        )
