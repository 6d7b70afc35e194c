"""What to do with each answer of the Kirim API: a pure function of the answer.

`classify_response` covers synchronous answers (HTTP status, error code, headers),
`classify_transport_error` a request that got no answer, `classify_async_failure`
a `failed` status reported later by webhook. Each returns one `Decision`; the
dispatcher's shell carries it out. Tables follow ../docs/kirim-api.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Scope(Enum):
    """How far a stop reaches."""

    CAMPAIGN = "campaign"
    SENDER = "sender"
    ORGANISATION = "organisation"


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: str


@dataclass(frozen=True, slots=True)
class Retry:
    """Send again after `after` seconds with the same key and body."""

    after: float
    code: str
    # The request may have landed (timeout, dropped connection): only the same key is safe.
    uncertain: bool = False
    # A 429: the organisation's rate budget is spent, not just this request's luck.
    rate_limited: bool = False


@dataclass(frozen=True, slots=True)
class Defer:
    """The sender's tier window is full: wait `after` seconds, hold new first contacts."""

    after: float
    code: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Permanent for this recipient: record the code; `suppress` adds the phone to the list."""

    code: str
    suppress: bool = False


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the campaign, the sender or every sender; the recipient stays pending."""

    scope: Scope
    code: str
    # A disconnected number comes back by itself; the others need an operator.
    resumes_automatically: bool = False


Decision = Accepted | Retry | Defer | GiveUp | Stop


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    max_seconds: float = 300.0
    max_attempts: int = 12
    in_progress_seconds: float = 5.0
    # Meta's own guidance: pair-rate limits back off 4^n s; engagement limits wait a day.
    spam_rate_seconds: float = 3600.0
    ecosystem_seconds: float = 86_400.0
    upstream_async_attempts: int = 3
    # An answer that cannot be taken at its word is asked again this often (same key:
    # an API that stored it replays it) before the recipient is failed as api_anomaly.
    anomaly_attempts: int = 3

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff: uniform in [0, min(max, base * 2^(attempt-1))]."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        return rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0

    def jitter(self, seconds: float, rng: random.Random) -> float:
        """A server-given wait plus up to 10% (at least 50 ms) so callers do not stampede."""
        return seconds + rng.uniform(0.0, max(0.05, seconds * 0.1))


# An asynchronous failure's action: (code, generation, policy, rng) -> Decision.
_AsyncAction = Callable[[str, int, RetryPolicy, random.Random], Decision]
_Seconds = Callable[[int, RetryPolicy], float]

_GIVE_UP_SYNC = frozenset(
    {
        "invalid_request",
        "missing_required_field",
        "invalid_field_value",
        "invalid_phone_number",
        "idempotency_key_reuse",
        "idempotency_conflict",
    }
)

# Asynchronous failure codes by Kirim code, and Meta provider codes for the ones
# Kirim's table does not name (the sandbox's names are marked * in kirim-api.md).
_UPSTREAM = "whatsapp_upstream_error"
_ASYNC_BY_PROVIDER_CODE = {
    131026: "recipient_not_on_whatsapp",
    1006: "recipient_not_on_whatsapp",
    1013: "recipient_blocked",
    132015: "template_paused",
    132016: "template_disabled",
    132000: "template_param_count_mismatch",
    132001: "template_param_format_mismatch",
    132012: "template_param_format_mismatch",
    131047: "outside_24h_window",
    131048: "quota_exceeded",
    131049: "ecosystem_engagement",
    130472: "marketing_experiment",
    131056: "pair_rate_limited",
    130429: "throughput_limited",
    131042: "payment_required",
    131000: "whatsapp_upstream_error",
}

RETRYABLE_CODES = frozenset(
    {
        "rate_limit_exceeded",
        "internal_error",
        "whatsapp_upstream_error",
        "idempotency_in_progress",
        "network_error",
        "timeout",
        "spam_rate_limited",
        "ecosystem_engagement",
        "pair_rate_limited",
        "throughput_limited",
        "retries_exhausted",
    }
)


# Every code of the synchronous table in kirim-api.md: any other is an anomaly.
KNOWN_SYNC_CODES = frozenset(
    {
        *_GIVE_UP_SYNC,
        "invalid_template_name",
        "invalid_api_key",
        "expired_api_key",
        "phone_number_forbidden",
        "resource_not_found",
        "idempotency_in_progress",
        "account_not_connected",
        "rate_limit_exceeded",
        "quota_exceeded",
        "internal_error",
        "whatsapp_upstream_error",
    }
)
# The error code of a recipient whose answer could not be taken at its word (the kind
# and the masked detail are in its error message). It may have been sent.
API_ANOMALY = "api_anomaly"
UNKNOWN_ERROR_CODE = "unknown_error_code"
# The error code of a recipient whose send met an unexpected error of our own (a bug
# or a stored value nobody foresaw). It may have been sent too.
DISPATCH_ERROR = "dispatch_error"
# Failures after which the recipient may or may not have the message: an operator's
# retry of them is an explicit choice (`broadcast retry --include-unknown`).
IN_DOUBT_CODES = frozenset({"outcome_unknown", API_ANOMALY, DISPATCH_ERROR})


@dataclass(frozen=True, slots=True)
class Answer:
    """The parts of a synchronous API answer that decide what happens next."""

    status: int
    code: str | None = None
    retry_after: float | None = None
    message_id: str | None = None
    # Why the answer cannot be taken at its word (consumer.kirim.answers), if it cannot.
    anomaly: str | None = None


def anomaly_of(answer: Answer) -> str | None:
    """The anomaly to count for this answer: an unreadable success, or an error code
    the contract does not name (it is still acted on, by its HTTP status)."""
    if answer.anomaly is not None:
        return answer.anomaly
    if 200 <= answer.status < 300 and not answer.message_id:
        return "missing_message_id"
    if 400 <= answer.status < 500 and answer.code not in KNOWN_SYNC_CODES:
        return UNKNOWN_ERROR_CODE
    return None


def classify_response(
    answer: Answer, attempt: int, policy: RetryPolicy, rng: random.Random
) -> Decision:
    """Classify one synchronous answer. `attempt` counts this one (1 = first try)."""
    status, retry_after = answer.status, answer.retry_after
    if answer.anomaly is not None or (200 <= status < 300 and not answer.message_id):
        if attempt >= policy.anomaly_attempts:
            return GiveUp(API_ANOMALY)
        return Retry(after=policy.backoff(attempt, rng), code=API_ANOMALY, uncertain=True)
    if 200 <= status < 300 and answer.message_id:
        return Accepted(answer.message_id)
    code = answer.code or f"http_{status}"
    if code in _GIVE_UP_SYNC:
        return GiveUp(code)
    if code == "invalid_template_name":
        return Stop(Scope.CAMPAIGN, code)
    if code in {"invalid_api_key", "expired_api_key"} or status == 401:
        return Stop(Scope.ORGANISATION, code)
    if code in {"phone_number_forbidden", "resource_not_found"} or status in {403, 404}:
        return Stop(Scope.SENDER, code)
    if code == "account_not_connected":
        return Stop(Scope.SENDER, code, resumes_automatically=True)
    if code == "quota_exceeded":
        return Defer(after=policy.jitter(retry_after or 60.0, rng), code=code)
    if status == 429:
        # The organisation's budget is spent, nothing was queued: not the recipient's
        # failure, so it never uses up the recipient's attempts (see outcome.row_result).
        after = retry_after if retry_after is not None else policy.backoff(attempt, rng)
        return Retry(after=policy.jitter(after, rng), code=code, rate_limited=True)
    if status == 409:
        return _retry_or_give_up(attempt, policy, rng, code, after=policy.in_progress_seconds)
    if status >= 500 or status == 408:
        return _retry_or_give_up(attempt, policy, rng, code)
    return GiveUp(code)


def classify_transport_error(
    code: str, attempt: int, policy: RetryPolicy, rng: random.Random
) -> Decision:
    """No answer (timeout, refused, dropped): it may have landed, so retry with the same key."""
    return _retry_or_give_up(attempt, policy, rng, code, uncertain=True)


def async_code_of(code: str | None, provider_code: int | None) -> str:
    """The Kirim code of an asynchronous failure, naming it by Meta's code when Kirim did not.

    Kirim's published table names only some Meta codes; the others (ecosystem engagement,
    payment, pair rate...) may come under its catch-all `whatsapp_upstream_error`, so
    that one yields to a Meta code the table maps to something more specific."""
    if code and code in _ASYNC_DECISIONS and code != _UPSTREAM:
        return code
    if provider_code is not None and provider_code in _ASYNC_BY_PROVIDER_CODE:
        return _ASYNC_BY_PROVIDER_CODE[provider_code]
    return code or (f"provider_{provider_code}" if provider_code is not None else "unknown_error")


def classify_async_failure(
    code: str | None,
    provider_code: int | None,
    generation: int,
    policy: RetryPolicy,
    rng: random.Random,
) -> Decision:
    """A message that failed after it was accepted. `generation` counts earlier re-sends."""
    name = async_code_of(code, provider_code)
    action = _ASYNC_DECISIONS.get(name)
    if action is None:
        return GiveUp(name)
    return action(name, generation, policy, rng)


def _retry_or_give_up(
    attempt: int,
    policy: RetryPolicy,
    rng: random.Random,
    code: str,
    *,
    after: float | None = None,
    uncertain: bool = False,
) -> Decision:
    if attempt >= policy.max_attempts:
        return GiveUp("retries_exhausted")
    wait = policy.backoff(attempt, rng) if after is None else after
    return Retry(after=wait, code=code, uncertain=uncertain)


def _give_up(suppress: bool = False) -> _AsyncAction:
    return lambda name, _generation, _policy, _rng: GiveUp(name, suppress=suppress)


def _retry_after(seconds: _Seconds) -> _AsyncAction:
    return lambda name, generation, policy, rng: Retry(
        after=policy.jitter(seconds(generation, policy), rng), code=name
    )


def _upstream(name: str, generation: int, policy: RetryPolicy, rng: random.Random) -> Decision:
    if generation + 1 >= policy.upstream_async_attempts:
        return GiveUp(name)
    return Retry(after=policy.backoff(generation + 1, rng), code=name)


_ASYNC_DECISIONS: dict[str, _AsyncAction] = {
    "recipient_not_on_whatsapp": _give_up(suppress=True),
    "recipient_blocked": _give_up(suppress=True),
    "template_paused": lambda name, *_: Stop(Scope.CAMPAIGN, name),
    "template_disabled": lambda name, *_: Stop(Scope.CAMPAIGN, name),
    "template_param_count_mismatch": _give_up(),
    "template_param_format_mismatch": _give_up(),
    "outside_24h_window": _give_up(),
    "marketing_experiment": _give_up(),
    "quota_exceeded": lambda name, _g, _p, rng: Defer(after=60.0 + rng.uniform(0, 6.0), code=name),
    "spam_rate_limited": _retry_after(lambda _g, p: p.spam_rate_seconds),
    "ecosystem_engagement": _retry_after(lambda _g, p: p.ecosystem_seconds),
    "pair_rate_limited": _retry_after(lambda g, _p: float(4 ** min(g + 1, 8))),
    "throughput_limited": _retry_after(lambda g, p: min(p.max_seconds, 2.0 ** (g + 1))),
    "payment_required": lambda name, *_: Stop(Scope.ORGANISATION, name),
    "whatsapp_upstream_error": _upstream,
}
