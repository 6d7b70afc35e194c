"""What the Kirim API says about a publish's sender: its status, its tier, the write rate.

Flags win (`--tier`, `--write-per-minute`: planning offline); otherwise
`GET /v1/accounts` gives the sender's status and tier (and, for `--auto-sender`,
which number intake will pick: `consumer.intake.sender.choose_auto_sender`)
and `GET /v1/me` the organisation's write rate. Anything that would make intake
pause the campaign (an unknown or disconnected sender, no connected account)
and an unusable API become warnings: the preview is informative, not a gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from cli.settings import CliSettings
from consumer.intake.sender import SenderAccount, choose_auto_sender
from consumer.kirim.client import KirimClient, KirimTransportError
from schemas.requests import Sender


@dataclass(frozen=True, slots=True)
class SenderFacts:
    phone_number_id: str | None
    auto: bool
    # The account's status from the API (`connected`, ...); None when not asked or unknown.
    status: str | None
    tier: int | None
    # Where `tier` and `write_per_minute` come from: "flag", "api" or None (unknown).
    tier_source: str | None
    write_per_minute: int | None
    rate_source: str | None


def _source(value: object) -> str | None:
    return "flag" if value is not None else None


async def sender_facts(
    settings: CliSettings,
    sender: Sender,
    *,
    tier: int | None,
    write_per_minute: int | None,
    warnings: list[str],
) -> SenderFacts:
    """The facts a fit plan needs; problems are appended to `warnings`."""
    sender_id, auto, status = sender.phone_number_id, sender.is_auto, None
    tier_source, rate, rate_source = _source(tier), write_per_minute, _source(write_per_minute)
    need_accounts = auto or tier is None
    if need_accounts or rate is None:
        client = KirimClient(
            settings.kirim_base_url,
            settings.kirim_api_key,
            timeout_seconds=settings.timeout_seconds,
        )
        try:
            if need_accounts:
                accounts = [
                    SenderAccount(a.phone_number_id, a.status, a.tier, a.quality_rating)
                    for a in await client.accounts()
                ]
                if auto:
                    sender_id = choose_auto_sender(accounts)
                account = _account(accounts, sender_id, warnings)
                if account is not None:
                    status = account.status
                    if tier is None:
                        tier, tier_source = account.tier, ("api" if account.tier else None)
            if rate is None:
                rate, _ = await client.rate_limits()
                rate_source = "api" if rate else None
        except (KirimTransportError, msgspec.DecodeError) as error:
            warnings.append(
                f"Kirim API not usable at {settings.kirim_base_url} ({error}): pass --tier "
                "and --write-per-minute for a fit plan"
            )
        finally:
            await client.close()
    return SenderFacts(sender_id, auto, status, tier, tier_source, rate, rate_source)


def _account(
    accounts: list[SenderAccount], sender_id: str | None, warnings: list[str]
) -> SenderAccount | None:
    if sender_id is None:
        warnings.append(
            "no connected account: intake will pause the campaign (no_connected_sender)"
        )
        return None
    account = next((a for a in accounts if a.phone_number_id == sender_id), None)
    if account is None:
        warnings.append(
            f"sender {sender_id} is not an account of this API key: intake will pause the "
            "campaign (sender_unknown)"
        )
    elif account.status != "connected":
        warnings.append(
            f"sender {sender_id} is {account.status}: intake will pause the campaign "
            "(sender_disconnected)"
        )
    return account
