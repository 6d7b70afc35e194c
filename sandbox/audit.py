"""What the sandbox saw since start or the last reset: the audit behind `GET /_sandbox/audit`.

Definitions (docs/sandbox.md repeats them):

- `accepted_sends`: 2xx answers to a send that created a message (replays excluded).
- `distinct_recipients`: distinct `to` among accepted sends.
- `duplicate_accepts`: accepted sends of a (phone_number_id, template, to) that
  already had one: accepted sends minus distinct such triples.
- `replays`: answers replayed from an idempotency key.
- `key_reuse` (422) and `key_in_progress` (409); `key_conflicts` is their sum.
- `rate_limited`: 429 `rate_limit_exceeded` answers.
- `quota_exceeded_sync` (429) and `quota_exceeded_async` (accepted, then
  failed 131048); `quota_exceeded` is their sum.
- `rejected`: other synchronous 4xx/5xx answers by code; `failed`: planned
  asynchronous failures by code.
- per number, `max_window_recipients`: the most unique recipients counted
  against the tier in any rolling quota window; `max_window_requested`: the
  same over every valid send that reached the quota check, refused ones
  included, so a client that overshoots its tier shows it here.
- `anomalies`: injected odd answers by kind, and a list of who got which
  (`kind`, `status`, `phone_number_id`, `to`, `idempotency_key`,
  `true_message_id`, `answered_id`, `at`); replays of them are not counted again.
- `delivered_after_failed`: failed sends planned to be delivered later too,
  with a list (`message_id`, `phone_number_id`, `to`, `idempotency_key`,
  `error_code`, `failed_at`, `delivered_at`).

Lists keep their first `LIST_MAX` entries (bounded memory); past that only
the counts grow and `unlisted` says how many were left out.

Plain in-memory counters; time is a parameter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sandbox.anomaly import OddAnswer
from sandbox.config import ANOMALY_KINDS
from sandbox.quota import RollingUniques
from sandbox.store import Message

LIST_MAX = 10_000


@dataclass(slots=True)
class Tally:
    accepted_sends: int = 0
    duplicate_accepts: int = 0
    replays: int = 0
    key_reuse: int = 0
    key_in_progress: int = 0
    rate_limited: int = 0
    quota_exceeded_sync: int = 0
    quota_exceeded_async: int = 0
    server_errors_injected: int = 0
    dropped_connections: int = 0
    late_answers: int = 0
    recipients: set[str] = field(default_factory=set)
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        return {
            "accepted_sends": self.accepted_sends,
            "distinct_recipients": len(self.recipients),
            "duplicate_accepts": self.duplicate_accepts,
            "replays": self.replays,
            "key_conflicts": self.key_reuse + self.key_in_progress,
            "key_reuse": self.key_reuse,
            "key_in_progress": self.key_in_progress,
            "rate_limited": self.rate_limited,
            "quota_exceeded": self.quota_exceeded_sync + self.quota_exceeded_async,
            "quota_exceeded_sync": self.quota_exceeded_sync,
            "quota_exceeded_async": self.quota_exceeded_async,
            "server_errors_injected": self.server_errors_injected,
            "dropped_connections": self.dropped_connections,
            "late_answers": self.late_answers,
            "rejected": dict(sorted(self.rejected.items())),
            "failed": dict(sorted(self.failed.items())),
        }


@dataclass(slots=True)
class NumberTally:
    tally: Tally
    counted: RollingUniques
    requested: RollingUniques


WEBHOOK_COUNTERS = (
    "events",
    "attempts",
    "succeeded",
    "retried",
    "failed_final",
    "exhausted",
    "network_errors",
    "duplicates",
    "reordered",
    "skipped_delivered",
    "abandoned",
    "dropped_backlog",
)


class Audit:
    def __init__(self, window: float, now: float) -> None:
        self.since = now
        self.window = window
        self.totals = Tally()
        self.numbers: dict[str, NumberTally] = {}
        self.templates: dict[str, Tally] = {}
        self.webhooks: Counter[str] = Counter()
        self.requests = 0
        self._triples: Counter[tuple[str, str, str]] = Counter()
        self.anomalies: Counter[str] = Counter()
        self.anomaly_list: list[dict[str, Any]] = []
        self.redelivered: list[dict[str, Any]] = []
        self.redelivered_total = 0

    def _number(self, phone_number_id: str) -> NumberTally:
        number = self.numbers.get(phone_number_id)
        if number is None:
            number = self.numbers[phone_number_id] = NumberTally(
                Tally(), RollingUniques(self.window), RollingUniques(self.window)
            )
        return number

    def _tallies(self, phone_number_id: str | None, template: str | None) -> list[Tally]:
        tallies = [self.totals]
        if phone_number_id is not None:
            tallies.append(self._number(phone_number_id).tally)
        if template is not None:
            tally = self.templates.get(template)
            if tally is None:
                tally = self.templates[template] = Tally()
            tallies.append(tally)
        return tallies

    def set_window(self, seconds: float) -> None:
        self.window = seconds
        for number in self.numbers.values():
            number.counted.window = seconds
            number.requested.window = seconds

    def quota_checked(self, phone_number_id: str, to: str, now: float) -> None:
        """A valid send reached the quota check (admitted or not)."""
        self._number(phone_number_id).requested.add(to, now)

    def accepted_before(self, phone_number_id: str, template: str, to: str) -> int:
        """How many sends of this (number, template, to) were accepted so far."""
        return self._triples.get((phone_number_id, template, to), 0)

    def accepted(
        self, phone_number_id: str, template: str, to: str, failure: str | None, now: float
    ) -> None:
        triple = (phone_number_id, template, to)
        self._triples[triple] += 1
        duplicate = self._triples[triple] > 1
        for tally in self._tallies(phone_number_id, template):
            tally.accepted_sends += 1
            tally.recipients.add(to)
            tally.duplicate_accepts += duplicate
            if failure is not None:
                tally.failed[failure] += 1
            if failure == "quota_exceeded":
                tally.quota_exceeded_async += 1
        if failure != "quota_exceeded":
            self._number(phone_number_id).counted.add(to, now)

    def replayed(self, phone_number_id: str | None, template: str | None) -> None:
        for tally in self._tallies(phone_number_id, template):
            tally.replays += 1

    def key_conflict(self, phone_number_id: str | None, *, in_progress: bool) -> None:
        for tally in self._tallies(phone_number_id, None):
            if in_progress:
                tally.key_in_progress += 1
            else:
                tally.key_reuse += 1

    def rate_limited(self, phone_number_id: str | None) -> None:
        for tally in self._tallies(phone_number_id, None):
            tally.rate_limited += 1

    def rejected(self, phone_number_id: str | None, template: str | None, code: str) -> None:
        for tally in self._tallies(phone_number_id, template):
            if code == "quota_exceeded":
                tally.quota_exceeded_sync += 1
            else:
                tally.rejected[code] += 1

    def fault(self, phone_number_id: str | None, kind: str) -> None:
        for tally in self._tallies(phone_number_id, None):
            setattr(tally, kind, getattr(tally, kind) + 1)

    def anomaly(
        self,
        odd: OddAnswer,
        *,
        phone_number_id: str,
        to: str | None,
        idempotency_key: str | None,
        true_message_id: str | None,
        now: float,
    ) -> None:
        self.anomalies[odd.kind] += 1
        if len(self.anomaly_list) < LIST_MAX:
            self.anomaly_list.append(
                {
                    "kind": odd.kind,
                    "status": odd.status,
                    "phone_number_id": phone_number_id,
                    "to": to,
                    "idempotency_key": idempotency_key,
                    "true_message_id": true_message_id,
                    "answered_id": odd.answered_id,
                    "at": now,
                }
            )

    def delivered_after_failed(self, message: Message) -> None:
        self.redelivered_total += 1
        if len(self.redelivered) < LIST_MAX:
            (_, failed_at), (_, delivered_at) = message.timeline.steps
            self.redelivered.append(
                {
                    "message_id": message.id,
                    "phone_number_id": message.phone_number_id,
                    "to": message.to,
                    "idempotency_key": message.idempotency_key,
                    "error_code": message.failure.code if message.failure else None,
                    "failed_at": failed_at,
                    "delivered_at": delivered_at,
                }
            )

    def webhook(self, counter: str, amount: int = 1) -> None:
        self.webhooks[counter] += amount

    def report(self, now: float, tiers: dict[str, int | None]) -> dict[str, Any]:
        anomalies = self.anomalies.total()
        numbers: dict[str, Any] = {}
        for number_id, number in sorted(self.numbers.items()):
            numbers[number_id] = number.tally.report() | {
                "tier": tiers.get(number_id),
                "window_recipients_now": number.counted.count(now),
                "max_window_recipients": number.counted.peak,
                "max_window_requested": number.requested.peak,
            }
        return {
            "since": self.since,
            "window_seconds": self.window,
            "requests": self.requests,
            "totals": self.totals.report() | {"distinct_triples": len(self._triples)},
            "numbers": numbers,
            "templates": {name: tally.report() for name, tally in sorted(self.templates.items())},
            "webhooks": {name: self.webhooks[name] for name in WEBHOOK_COUNTERS},
            "anomalies": {
                "total": anomalies,
                "by_kind": {kind: self.anomalies[kind] for kind in ANOMALY_KINDS},
                "injected": self.anomaly_list,
                "unlisted": anomalies - len(self.anomaly_list),
            },
            "delivered_after_failed": {
                "total": self.redelivered_total,
                "messages": self.redelivered,
                "unlisted": self.redelivered_total - len(self.redelivered),
            },
        }
