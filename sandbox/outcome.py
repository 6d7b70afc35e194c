"""What becomes of an accepted send: deterministic under a seed, forceable by prefix.

Precedence, first match wins:
1. an *imposed* failure the engine found (quota, template paused/disabled,
   parameter mismatch, free-form text, throughput): it is what Meta would do;
2. `forced`: the outcome of the longest configured E.164 prefix of `to`;
3. `mix`: one uniform draw from `blake2b(seed | number | to | template | ordinal)`
   walks the failure shares in code order; past them the send succeeds and a
   second draw decides `read` (probability `read_share`) or `delivered`.

`ordinal` counts earlier accepted sends of the same (number, template, to), so
a retry of a transient failure draws again while a rerun with the same seed and
the same sends repeats every outcome, whatever the arrival order.

`delivered_after_failed` draws the same way (its own hash) whether a failed
send is later delivered too (multi-device), so that is reproducible as well.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.catalog import FAILURES, SUCCESS_OUTCOMES, SYNC_OUTCOMES, Failure

_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Plan:
    """`reached` is the last status of the lifecycle: sent, delivered, read or failed."""

    reached: str
    failure: Failure | None = None
    # Failed, then delivered anyway (another device of the recipient got it).
    delivered_after_failed: bool = False


def draws(
    seed: int, phone_number_id: str, to: str, template: str, ordinal: int
) -> tuple[float, float]:
    """Two independent uniforms in [0, 1) for one send."""
    key = f"{seed}|{phone_number_id}|{to}|{template}|{ordinal}".encode()
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return (
        int.from_bytes(digest[:8], "big") / _SCALE,
        int.from_bytes(digest[8:], "big") / _SCALE,
    )


def forced_outcome(forced: Mapping[str, str], to: str) -> str | None:
    """The outcome of the longest prefix of `to` in `forced`, if any."""
    for end in range(len(to), 1, -1):
        outcome = forced.get(to[:end])
        if outcome is not None:
            return outcome
    return None


def forced_sync(forced: Mapping[str, str], to: str) -> str | None:
    """A forced outcome that must be answered synchronously (no message is queued)."""
    outcome = forced_outcome(forced, to) if forced else None
    return outcome if outcome in SYNC_OUTCOMES else None


def plan_outcome(
    *,
    seed: int,
    mix: Mapping[str, float],
    read_share: float,
    forced: Mapping[str, str],
    phone_number_id: str,
    to: str,
    template: str,
    ordinal: int,
    imposed: str | None = None,
) -> Plan:
    if imposed is not None:
        return Plan("failed", FAILURES[imposed])
    chosen = forced_outcome(forced, to) if forced else None
    if chosen in SUCCESS_OUTCOMES:
        return Plan(chosen)
    if chosen in FAILURES:
        return Plan("failed", FAILURES[chosen])
    share_draw, read_draw = draws(seed, phone_number_id, to, template, ordinal)
    if mix:
        cumulative = 0.0
        for code in sorted(mix):
            cumulative += mix[code]
            if share_draw < cumulative:
                return Plan("failed", FAILURES[code])
    return Plan("read" if read_draw < read_share else "delivered")


def delivered_after_failed(
    probability: float, *, seed: int, phone_number_id: str, to: str, template: str, ordinal: int
) -> bool:
    """Whether a failed send is later delivered too; one draw per send, like `draws`."""
    if probability <= 0.0:
        return False
    key = f"{seed}|{phone_number_id}|{to}|{template}|{ordinal}|delivered_after_failed".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE < probability
