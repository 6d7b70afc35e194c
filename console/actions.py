"""What an operator can do from the console, each through the CLI's own function.

- pause / resume / cancel: `cli.control.control` publishes the control event to
  `broadcast.requests`, keyed by the campaign, exactly as `broadcast pause` does;
  intake applies it in order with the campaign's chunks.
- retry retryable: `cli.failures.retry`, the one UPDATE `broadcast retry` runs
  (never the unknown outcomes: those may have been sent, and stay the CLI's
  `--include-unknown`).

Every attempt is recorded in `console_actions` (who, what, when, and what came of
it), failed ones too; the campaign page shows the trail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from cli.control import control
from cli.errors import CliError
from cli.failures import retry, retry_codes
from console.access import User
from console.settings import ConsoleSettings
from console.store import ConsoleStore
from runtime.logs import get_logger

log = get_logger(__name__)

CONTROLS: Final = ("pause", "resume", "cancel")
ACTIONS: Final = (*CONTROLS, "retry")
MAX_REASON_CHARS: Final = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str


class Actions:
    def __init__(self, settings: ConsoleSettings, store: ConsoleStore) -> None:
        self._settings = settings
        self._store = store

    async def act(
        self, user: User, action: str, campaign_id: uuid.UUID, reason: str | None
    ) -> Outcome:
        """Run one action for `user` (who must be allowed to act) and record it."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        reason = (reason or "").strip()[:MAX_REASON_CHARS] or None
        cli = self._settings.cli(operator=user.name)
        try:
            if action == "retry":
                result = await retry(cli, campaign_id, retry_codes((), include_unknown=False))
                outcome = Outcome(True, f"re-queued {result.total:,} retryable recipient(s)")
            else:
                published = await control(
                    cli, action, campaign_id, reason=reason, requested_by=f"console:{user.name}"
                )
                delivery = published.delivery
                where = f"partition {delivery.partition} offset {delivery.offset}"
                outcome = Outcome(True, f"{action} published ({where}); intake applies it soon")
        except CliError as error:
            outcome = Outcome(False, error.message)
        await self._store.record_action(
            actor=user.name,
            role=user.role.value,
            action=action,
            campaign_id=campaign_id,
            detail=reason if action != "retry" else None,
            outcome=("ok: " if outcome.ok else "refused: ") + outcome.message,
        )
        log.info(
            "console_action",
            actor=user.name,
            action=action,
            campaign=str(campaign_id),
            ok=outcome.ok,
        )
        return outcome
