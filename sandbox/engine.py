"""The sandbox's state and its synchronous request handling (no I/O, no awaits).

The ASGI shell (`app`) does the waiting (latency, in-progress keys, late
answers) and the bytes on the wire; everything decided about a request
happens here, in one call, with `now` passed in.

Send pipeline (`send`), first failing step answers:
404 unknown number -> 403 forbidden number -> 400 body/shape/template name ->
400 parameter mismatch (when `param_mismatch` is "sync") -> 422 number not
connected -> forced synchronous outcome -> outcome plan -> tier quota (only
sends planned to succeed count; 429 when `exceeded_mode` is "sync", else the
send fails later with `quota_exceeded`) -> 2xx `pending`.

An injected anomaly (`faults.anomalies`, see `anomaly`) either replaces the
whole pipeline (`unknown_code`) or rewrites the 2xx of an accepted send; an
anomaly drawn for a send that is refused anyway changes nothing.
"""

from __future__ import annotations

import hmac
import random
from dataclasses import dataclass, replace
from typing import Any, Final

import msgspec

from sandbox.anomaly import JSON, OddAnswer, accepted_answer, refusal
from sandbox.audit import Audit
from sandbox.catalog import FAILURES, SYNC_OUTCOMES
from sandbox.config import Account, AnomalyKind, RuntimeConfig, mix_for, tier_of
from sandbox.errors import ApiError, encode_error
from sandbox.faults import FaultCounters, FaultPlan, plan_faults
from sandbox.idempotency import IdempotencyStore
from sandbox.identifiers import message_id, wamid
from sandbox.outcome import Plan, delivered_after_failed, forced_sync, plan_outcome
from sandbox.quota import Exceeded, TierQuota
from sandbox.ratelimit import RateDecision, TokenBucket
from sandbox.store import Message, MessageStore
from sandbox.timeline import build_timeline
from sandbox.validation import SendRequest, check_template, parse_send
from sandbox.wire import Listing, Single, account_view, encoder, message_view

INVALID_JSON: Final = object()
_MISMATCHES: Final = frozenset({"template_param_count_mismatch", "template_param_format_mismatch"})
_SYNC_CODES: Final = {"whatsapp_upstream_error_sync": "whatsapp_upstream_error"}


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer decided by the engine; `storable` answers may be replayed."""

    status: int
    body: bytes
    storable: bool = False
    retry_after: int | None = None
    message: Message | None = None
    template: str | None = None
    replayed: bool = False
    content_type: bytes = JSON


class Engine:
    def __init__(self, config: RuntimeConfig, now: float, *, max_messages: int) -> None:
        self._config = config
        self.store = MessageStore(max_messages)
        self.fault_rng = random.Random(config.outcomes.seed)
        self.webhook_rng = random.Random(config.outcomes.seed + 1)
        self._reset_state(now)

    def _reset_state(self, now: float) -> None:
        config = self._config
        self.write_bucket = TokenBucket.per_minute(config.rate_limits.write_per_minute, now)
        self.read_bucket = TokenBucket.per_minute(config.rate_limits.read_per_minute, now)
        self.idempotency = IdempotencyStore(config.idempotency.ttl_seconds)
        self.quota = TierQuota(config.quota.window_seconds)
        self.audit = Audit(config.quota.window_seconds, now)
        self.throughput: dict[str, TokenBucket] = {}
        self.fault_counters = _counters_from(config)
        # The last message id answered normally: what a `reused_id` anomaly answers.
        self.last_handed_out: str | None = None
        self.store.clear()

    @property
    def config(self) -> RuntimeConfig:
        return self._config

    def reconfigure(
        self, config: RuntimeConfig, now: float, *, countdowns: frozenset[str] = frozenset()
    ) -> None:
        """Swap in a validated config; live state follows it (bucket sizes, windows, TTL)."""
        old, self._config = self._config, config
        if old.rate_limits != config.rate_limits:
            write, read = config.rate_limits.write_per_minute, config.rate_limits.read_per_minute
            self.write_bucket.resize(float(write), write / 60.0, now)
            self.read_bucket.resize(float(read), read / 60.0, now)
        self.quota.window = config.quota.window_seconds
        self.audit.set_window(config.quota.window_seconds)
        self.idempotency.ttl_seconds = config.idempotency.ttl_seconds
        if old.accounts != config.accounts:
            self.throughput.clear()
        if old.outcomes.seed != config.outcomes.seed:
            self.fault_rng.seed(config.outcomes.seed)
            self.webhook_rng.seed(config.outcomes.seed + 1)
        # Only the countdowns the patch set restart; the others keep counting down.
        fresh = _counters_from(config)
        self.fault_counters = replace(
            self.fault_counters, **{name: getattr(fresh, name) for name in countdowns}
        )

    def reset(self, config: RuntimeConfig, now: float) -> None:
        self._config = config
        self.fault_rng.seed(config.outcomes.seed)
        self.webhook_rng.seed(config.outcomes.seed + 1)
        self._reset_state(now)

    # Checks every API request goes through.

    def authenticate(self, authorization: str | None) -> ApiError | None:
        if authorization is None:
            return ApiError(401, "invalid_api_key", "missing Authorization: Bearer <key>")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return ApiError(401, "invalid_api_key", "use Authorization: Bearer <key>")
        if hmac.compare_digest(key.encode(), self._config.api_key.encode()):
            return None
        if key in self._config.expired_api_keys:
            return ApiError(401, "expired_api_key", "this API key has expired")
        return ApiError(401, "invalid_api_key", "invalid API key")

    def take_token(self, write: bool, now: float) -> RateDecision:
        return (self.write_bucket if write else self.read_bucket).take(now)

    def peek_token(self, write: bool, now: float) -> RateDecision:
        return (self.write_bucket if write else self.read_bucket).peek(now)

    def faults(self, *, send: bool) -> FaultPlan:
        plan, self.fault_counters = plan_faults(
            self._config.faults, self.fault_counters, self.fault_rng, send=send
        )
        return plan

    def error(self, error: ApiError, request_id: str, template: str | None = None) -> Answer:
        return Answer(
            error.status,
            encode_error(error, request_id),
            storable=error.storable,
            retry_after=error.retry_after,
            template=template,
        )

    # Endpoints.

    def send(
        self,
        number_id: str,
        document: Any,
        request_id: str,
        key: str | None,
        now: float,
        *,
        anomaly: AnomalyKind | None = None,
    ) -> Answer:
        if anomaly == "unknown_code":
            odd = refusal(self._config.faults.anomalies, request_id)
            to = document.get("to") if isinstance(document, dict) else None
            self.audit.anomaly(
                odd,
                phone_number_id=number_id,
                to=to if isinstance(to, str) else None,
                idempotency_key=key,
                true_message_id=None,
                now=now,
            )
            return Answer(odd.status, odd.body, storable=True)
        answer = self._process(number_id, document, request_id, key, now)
        message = answer.message
        if message is None:
            return answer
        if anomaly is None:
            self.last_handed_out = message.id
            return answer
        odd = accepted_answer(
            anomaly,
            message_view(message, now),
            request_id,
            status=answer.status,
            earlier_id=self.last_handed_out,
            options=self._config.faults.anomalies,
        )
        self.audit.anomaly(
            odd,
            phone_number_id=number_id,
            to=message.to,
            idempotency_key=key,
            true_message_id=message.id,
            now=now,
        )
        return _odd(answer, odd)

    def _process(
        self, number_id: str, document: Any, request_id: str, key: str | None, now: float
    ) -> Answer:
        config = self._config
        account = config.accounts.get(number_id)
        if account is None:
            error = ApiError(404, "resource_not_found", "unknown number", "phone_number_id")
            # Counted in the totals only: unknown ids must not grow the per-number report.
            self.audit.rejected(None, None, error.code)
            return self.error(error, request_id)
        if account.forbidden:
            error = ApiError(403, "phone_number_forbidden", "this key may not use this number")
            return self._rejected(number_id, None, error, request_id)
        if document is INVALID_JSON:
            error = ApiError(400, "invalid_request", "the request body is not valid JSON")
            return self._rejected(number_id, None, error, request_id)
        request = parse_send(document)
        if isinstance(request, ApiError):
            return self._rejected(number_id, None, request, request_id)
        template = request.template_name or "(text)"
        verdict = check_template(request, config.templates)
        if isinstance(verdict, ApiError):
            return self._rejected(number_id, template, verdict, request_id)
        if verdict in _MISMATCHES and config.param_mismatch == "sync":
            error = ApiError(
                400, "invalid_field_value", verdict.replace("_", " "), "template.components"
            )
            return self._rejected(number_id, template, error, request_id)
        if account.status != "connected":
            error = ApiError(422, "account_not_connected", f"the number is {account.status}")
            return self._rejected(number_id, template, error, request_id)
        forced = forced_sync(config.outcomes.forced, request.to)
        if forced is not None:
            status = SYNC_OUTCOMES[forced]
            code = _SYNC_CODES.get(forced, forced)
            param = "to" if status < 500 else None
            error = ApiError(status, code, f"forced outcome {forced}", param)
            return self._rejected(number_id, template, error, request_id)
        imposed = verdict if isinstance(verdict, str) else None
        if request.type == "text":
            imposed = "outside_24h_window"
        if imposed is None and not self._within_throughput(number_id, account, now):
            imposed = "throughput_limited"
        ordinal = self.audit.accepted_before(number_id, template, request.to)
        plan = plan_outcome(
            seed=config.outcomes.seed,
            mix=mix_for(config, request.template_name),
            read_share=config.outcomes.read_share,
            forced=config.outcomes.forced,
            phone_number_id=number_id,
            to=request.to,
            template=template,
            ordinal=ordinal,
            imposed=imposed,
        )
        self.audit.quota_checked(number_id, request.to, now)
        if plan.failure is None:
            admitted = self.quota.admit(
                account.quota_group or number_id, request.to, tier_of(account), now
            )
            if isinstance(admitted, Exceeded):
                if config.quota.exceeded_mode == "sync":
                    error = ApiError(
                        429,
                        "quota_exceeded",
                        "the number's messaging tier is full for this window",
                        retry_after=admitted.retry_after,
                    )
                    return self._rejected(number_id, template, error, request_id)
                plan = Plan("failed", FAILURES["quota_exceeded"])
        if plan.failure is not None and delivered_after_failed(
            config.lifecycle.delivered_after_failed_probability,
            seed=config.outcomes.seed,
            phone_number_id=number_id,
            to=request.to,
            template=template,
            ordinal=ordinal,
        ):
            plan = replace(plan, delivered_after_failed=True)
        return self._accept(
            number_id,
            request=request,
            template=template,
            plan=plan,
            key=key,
            request_id=request_id,
            now=now,
        )

    def _within_throughput(self, number_id: str, account: Account, now: float) -> bool:
        per_second = account.throughput_per_second
        if per_second is None:
            return True
        bucket = self.throughput.get(number_id)
        if bucket is None:
            # A one-second burst, but never less than one message.
            capacity = max(1.0, per_second)
            bucket = self.throughput[number_id] = TokenBucket(capacity, per_second, now)
        return bucket.take(now).allowed

    def _accept(
        self,
        number_id: str,
        *,
        request: SendRequest,
        template: str,
        plan: Plan,
        key: str | None,
        request_id: str,
        now: float,
    ) -> Answer:
        config = self._config
        msg_id = message_id(now)
        message = Message(
            id=msg_id,
            seq=self.store.next_seq(),
            phone_number_id=number_id,
            to=request.to,
            template=request.template_name,
            language=request.language,
            created_at=now,
            wamid=wamid(msg_id, request.to[1:]),
            timeline=build_timeline(
                plan,
                now,
                config.outcomes.delays,
                config.time_scale,
                redelivery_delay=config.lifecycle.delivered_after_failed_delay_seconds,
            ),
            failure=plan.failure,
            idempotency_key=key,
        )
        self.store.add(message)
        failure = plan.failure.code if plan.failure is not None else None
        self.audit.accepted(number_id, template, request.to, failure, now)
        if plan.delivered_after_failed:
            self.audit.delivered_after_failed(message)
        body = encoder.encode(Single(message_view(message, now), request_id))
        return Answer(config.accept_status, body, storable=True, message=message, template=template)

    def _rejected(
        self, number_id: str | None, template: str | None, error: ApiError, request_id: str
    ) -> Answer:
        self.audit.rejected(number_id, template, error.code)
        return self.error(error, request_id, template)

    def get_message(self, number_id: str, msg_id: str, request_id: str, now: float) -> Answer:
        message = self.store.get(msg_id)
        if message is None or message.phone_number_id != number_id:
            error = ApiError(404, "resource_not_found", "no such message", "message_id")
            return self.error(error, request_id)
        return Answer(200, encoder.encode(Single(message_view(message, now), request_id)))

    def accounts(self, status: str, request_id: str) -> Answer:
        if status not in {"all", "connected"}:
            error = ApiError(400, "invalid_field_value", "status: connected or all", "status")
            return self.error(error, request_id)
        config = self._config
        data = [
            account_view(number_id, account, config.tier_encoding)
            for number_id, account in config.accounts.items()
            if status == "all" or account.status == "connected"
        ]
        return Answer(200, encoder.encode(Listing(data, False, None, request_id)))

    def me(self, request_id: str) -> Answer:
        limits = self._config.rate_limits
        data = {
            "object": "organization",
            "id": "org_sandbox",
            "name": "Kirim sandbox",
            "plan": limits.plan,
            "rate_limits": {
                "tier": limits.plan,
                "write_per_minute": limits.write_per_minute,
                "read_per_minute": limits.read_per_minute,
            },
        }
        return Answer(200, encoder.encode(Single(data, request_id)))


def _odd(answer: Answer, odd: OddAnswer) -> Answer:
    """The accepted send's answer with the anomaly's bytes: stored and replayed like any."""
    return replace(answer, status=odd.status, body=odd.body, content_type=odd.content_type)


def _counters_from(config: RuntimeConfig) -> FaultCounters:
    faults = config.faults
    return FaultCounters(
        server_errors=faults.server_errors.next,
        late_answers=faults.late_answers.next,
        dropped_connections=faults.dropped_connections.next,
        anomalies=faults.anomalies.next,
    )


def with_live_counters(config: RuntimeConfig, counters: FaultCounters) -> RuntimeConfig:
    """The config as shown: each fault's `next` is what is left of its countdown."""
    faults = config.faults
    with_next = msgspec.structs.replace
    return with_next(
        config,
        faults=with_next(
            faults,
            server_errors=with_next(faults.server_errors, next=counters.server_errors),
            late_answers=with_next(faults.late_answers, next=counters.late_answers),
            dropped_connections=with_next(
                faults.dropped_connections, next=counters.dropped_connections
            ),
            anomalies=with_next(faults.anomalies, next=counters.anomalies),
        ),
    )
