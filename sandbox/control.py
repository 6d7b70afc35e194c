"""The `/_sandbox/...` control API: audit, reset, run-time config, message listing.

Unauthenticated (the sandbox binds loopback), never rate limited, never
faulted. Answers use the API's envelopes. Synchronous: the shell routes here.

- `GET /_sandbox/audit`: `Audit.report` plus `webhooks.pending`.
- `POST /_sandbox/reset`: forget all state (messages, keys, buckets, quota
  windows, audit, queued webhooks) and restore the start config; with
  `?keep_config=true` keep the running config.
- `GET /_sandbox/config`: the running config, secrets masked, each fault's
  `next` showing what is left of its countdown.
- `PATCH /_sandbox/config`: a JSON merge patch; a fault whose `next` the patch
  sets restarts its countdown. 400 on a bad patch, which changes nothing.
- `GET /_sandbox/messages?phone_number_id=&status=&after=&limit=`: accepted
  messages in acceptance order (`limit` <= 10000, default 1000); `next_cursor`
  is the `after` of the next page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from sandbox.config import ConfigError, RuntimeConfig, patch_config, redacted, tier_of
from sandbox.engine import Answer, Engine, with_live_counters
from sandbox.errors import ApiError
from sandbox.faults import FaultCounters
from sandbox.timeline import status_at
from sandbox.wire import Listing, Single, encoder, iso

MAX_PAGE = 10_000


class Control:
    def __init__(
        self,
        engine: Engine,
        start_config: RuntimeConfig,
        *,
        on_reset: Callable[[], None],
        pending_webhooks: Callable[[], int],
    ) -> None:
        self._engine = engine
        self._start_config = start_config
        self._on_reset = on_reset
        self._pending_webhooks = pending_webhooks

    def audit(self, request_id: str, now: float) -> Answer:
        engine = self._engine
        tiers = {number_id: tier_of(acc) for number_id, acc in engine.config.accounts.items()}
        report = engine.audit.report(now, tiers)
        report["webhooks"]["pending"] = self._pending_webhooks()
        return Answer(200, encoder.encode(Single(report, request_id)))

    def reset(self, query: Mapping[str, str], request_id: str, now: float) -> Answer:
        keep = query.get("keep_config", "").lower() in {"1", "true", "yes"}
        self._engine.reset(self._engine.config if keep else self._start_config, now)
        self._on_reset()
        return Answer(200, encoder.encode(Single({"reset": True}, request_id)))

    def get_config(self, request_id: str) -> Answer:
        engine = self._engine
        shown = redacted(with_live_counters(engine.config, engine.fault_counters))
        return Answer(200, encoder.encode(Single(shown, request_id)))

    def patch_config(self, body: bytes, request_id: str, now: float) -> Answer:
        try:
            patch = msgspec.json.decode(body)
            config = patch_config(self._engine.config, patch)
        except (msgspec.DecodeError, ConfigError) as exc:
            error = ApiError(400, "invalid_request", f"config patch refused: {exc}")
            return self._engine.error(error, request_id)
        self._engine.reconfigure(config, now, countdowns=_countdowns_set(patch))
        return self.get_config(request_id)

    def messages(self, query: Mapping[str, str], request_id: str, now: float) -> Answer:
        try:
            after = int(query.get("after", "0"))
            limit = int(query.get("limit", "1000"))
        except ValueError:
            error = ApiError(400, "invalid_field_value", "after and limit must be integers")
            return self._engine.error(error, request_id)
        if not 1 <= limit <= MAX_PAGE:
            error = ApiError(400, "invalid_field_value", f"limit must be 1..{MAX_PAGE}", "limit")
            return self._engine.error(error, request_id)
        number_id = query.get("phone_number_id")
        wanted_status = query.get("status")
        page: list[dict[str, Any]] = []
        last_seq = after
        has_more = False
        for message in self._engine.store.after(after):
            if number_id is not None and message.phone_number_id != number_id:
                continue
            status, since = status_at(message.timeline, now)
            if wanted_status is not None and status != wanted_status:
                continue
            if len(page) == limit:
                has_more = True
                break
            page.append(
                {
                    "id": message.id,
                    "seq": message.seq,
                    "phone_number_id": message.phone_number_id,
                    "to": message.to,
                    "template": message.template,
                    "status": status,
                    "error_code": message.failure.code
                    if status == "failed" and message.failure
                    else None,
                    "idempotency_key": message.idempotency_key,
                    "created_at": iso(message.created_at),
                    "updated_at": iso(since),
                }
            )
            last_seq = message.seq
        cursor = str(last_seq) if has_more else None
        return Answer(200, encoder.encode(Listing(page, has_more, cursor, request_id)))


def _countdowns_set(patch: Any) -> frozenset[str]:
    """Names of the fault countdowns whose `next` the patch sets."""
    faults = patch.get("faults") if isinstance(patch, dict) else None
    if not isinstance(faults, dict):
        return frozenset()
    return frozenset(
        countdown.name
        for countdown in dataclasses.fields(FaultCounters)
        if isinstance(faults.get(countdown.name), dict) and "next" in faults[countdown.name]
    )
