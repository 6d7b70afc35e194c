"""Priority lanes' pure core: whose turn it is, the queue of waiters, the quota order."""

from __future__ import annotations

import asyncio
import itertools
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dispatch.lanes import (
    BULK,
    LANES,
    MAX_BULK_SHARE,
    TRANSACTIONAL,
    Lane,
    LaneTurns,
    TurnQueue,
    lane_of,
    plan_behind,
)
from consumer.dispatch.quota import QuotaSnapshot, plan_quota
from consumer.dispatch.slots import Slots

T: Final = TRANSACTIONAL
B: Final = BULK
shares = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.25, 1 / 3, 0.5]) | st.floats(0.0, MAX_BULK_SHARE)


def test_lane_of_a_priority() -> None:
    assert lane_of("transactional") == T
    assert lane_of("bulk") == B
    assert lane_of("anything else") == B


@pytest.mark.parametrize(
    ("share", "turns", "expected"),
    [
        # Both wait: one turn in 1/share is bulk's, the first ones are transactional's.
        (0.25, [(True, True)] * 8, "TTTBTTTB"),
        (0.5, [(True, True)] * 6, "TBTBTB"),
        (0.05, [(True, True)] * 40, "T" * 19 + "B" + "T" * 19 + "B"),
        (0.0, [(True, True)] * 5, "TTTTT"),
        # One waits alone: it takes the turn (transactional leftovers go to bulk).
        (0.05, [(False, True)] * 3, "BBB"),
        (0.05, [(True, False)] * 3, "TTT"),
        (0.05, [(False, False)], "-"),
        # Bulk saves no credit while it waits alone or not at all: no burst afterwards.
        (0.25, [(True, False)] * 10 + [(True, True)] * 4, "TTTTTTTTTTTTTB"),
        (0.25, [(True, True)] * 3 + [(False, True)] * 5 + [(True, True)] * 2, "TTTBBBBBBT"),
    ],
)
def test_whose_turn(share: float, turns: list[tuple[bool, bool]], expected: str) -> None:
    lanes = LaneTurns(share)
    chosen = [lanes.choose(t, b) for t, b in turns]
    assert "".join({T: "T", B: "B", None: "-"}[c] for c in chosen) == expected


@pytest.mark.parametrize("share", [-0.01, 0.51, 1.0])
def test_a_share_outside_0_to_a_half_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="bulk_min_share"):
        LaneTurns(share)


@given(share=shares, turns=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=300))
def test_bulk_keeps_its_share_and_transactional_never_waits_behind_more(
    share: float, turns: list[tuple[bool, bool]]
) -> None:
    lanes = LaneTurns(share)
    contested: list[Lane] = []
    for t_waits, b_waits in turns:
        chosen = lanes.choose(t_waits, b_waits)
        # A turn goes to a lane that waits, and never idles while someone waits.
        assert (chosen is None) == (not t_waits and not b_waits)
        assert chosen != T or t_waits
        assert chosen != B or b_waits
        if t_waits and b_waits:
            assert chosen is not None
            contested.append(chosen)
    # Over any run of k turns both lanes wanted, bulk got floor(k * share) or one more.
    units = round(share * 1_000_000)
    for start in range(0, len(contested), 7):
        for end in range(start + 1, len(contested) + 1):
            k = end - start
            bulk = contested[start:end].count(B)
            least = k * units // 1_000_000
            assert least <= bulk <= least + 1
    # So, with share <= 1/2, transactional never waits behind two bulk turns in a row.
    assert all(not (a == b == B) for a, b in itertools.pairwise(contested))
    # From the start the count is exact: bulk's share is a floor, not an average.
    assert contested.count(B) == len(contested) * units // 1_000_000


@given(
    share=shares,
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.sampled_from(LANES)),
            st.tuples(st.just("pop"), st.just(T)),
            st.tuples(st.just("remove"), st.integers(0, 50)),
        ),
        max_size=200,
    ),
)
def test_the_queue_serves_every_waiter_once_in_order_within_its_lane(
    share: float, ops: list[tuple[str, object]]
) -> None:
    queue: TurnQueue[int] = TurnQueue(share)
    waiting: dict[Lane, list[int]] = {T: [], B: []}
    served: list[int] = []
    removed: set[int] = set()
    counter = 0
    for op, arg in ops:
        if op == "push":
            lane: Lane = T if arg == T else B
            queue.push(lane, counter)
            waiting[lane].append(counter)
            counter += 1
        elif op == "remove":
            assert isinstance(arg, int)
            was_waiting = any(arg in w for w in waiting.values())
            assert queue.remove(arg) == was_waiting
            for w in waiting.values():
                if arg in w:
                    w.remove(arg)
                    removed.add(arg)
        else:
            popped = queue.pop()
            if popped is None:
                assert waiting == {T: [], B: []}
                continue
            # The head of one lane: first come, first served within a lane.
            assert popped in (waiting[T][:1] + waiting[B][:1])
            for w in waiting.values():
                if w and w[0] == popped:
                    w.pop(0)
            served.append(popped)
        assert len(queue) == len(waiting[T]) + len(waiting[B])
        assert queue.waiting(T) == len(waiting[T])
    # No waiter twice, none that gave up.
    assert len(served) == len(set(served))
    assert not removed & set(served)


def snap(limit: int, used: int = 0, in_window: frozenset[str] = frozenset()) -> QuotaSnapshot:
    return QuotaSnapshot(limit=limit, used=used, in_window=in_window, oldest_contact_at=50.0)


@pytest.mark.parametrize(
    ("ahead", "phones", "limit", "in_window", "send", "defer"),
    [
        # Nothing ahead: the plain plan.
        ([], ["b1", "b2", "b3"], 2, frozenset(), ("b1", "b2"), ("b3",)),
        # Transactional recipients due first take the room; bulk gets the rest.
        (["t1", "t2"], ["b1", "b2", "b3"], 3, frozenset(), ("b1",), ("b2", "b3")),
        (["t1", "t2", "t3"], ["b1"], 3, frozenset(), (), ("b1",)),
        # One already in the window costs nothing, whoever is ahead.
        (["t1", "t2", "t3"], ["b1", "b2"], 3, frozenset({"b2"}), ("b2",), ("b1",)),
        # The same person in both lanes counts once and is sent by bulk too.
        (["t1", "p"], ["p", "b1"], 3, frozenset(), ("p", "b1"), ()),
        # Room enough for everyone.
        (["t1"], ["b1", "b2"], 10, frozenset(), ("b1", "b2"), ()),
    ],
)
def test_a_bulk_plan_leaves_the_room_to_transactional_recipients_due(
    ahead: list[str],
    phones: list[str],
    limit: int,
    in_window: frozenset[str],
    send: tuple[str, ...],
    defer: tuple[str, ...],
) -> None:
    before = snap(limit, len(in_window), in_window)
    plan = plan_behind(ahead, phones, before, 100.0, window_seconds=60)
    assert (plan.send, plan.defer) == (send, defer)
    assert plan.new_contacts == len(set(send) - in_window)
    assert plan.retry_at == (110.0 if defer else None)  # the oldest contact's window ends


phone_lists = st.lists(st.sampled_from([f"+62{i}" for i in range(30)]), max_size=25)


@given(
    ahead=phone_lists,
    phones=phone_lists,
    limit=st.integers(0, 30),
    known=st.frozensets(st.sampled_from([f"+62{i}" for i in range(30)]), max_size=10),
)
def test_transactional_recipients_get_at_least_the_room_they_had_before_bulk_planned(
    ahead: list[str], phones: list[str], limit: int, known: frozenset[str]
) -> None:
    before = snap(limit, len(known), known)
    plan = plan_behind(ahead, phones, before, 100.0, window_seconds=60)
    # Every recipient is either sent or deferred, and nothing is over the tier.
    assert sorted(plan.send + plan.defer) == sorted(phones)
    contacted = known | set(plan.send)
    assert len(contacted) <= max(limit, len(known))
    # Then the transactional lane plans with what bulk recorded: it loses nothing.
    after = snap(limit, len(contacted), frozenset(contacted))
    alone = plan_quota(ahead, before, 100.0, 60)
    behind = plan_quota(ahead, after, 100.0, 60)
    assert set(alone.send) <= set(behind.send)
    if not ahead:
        assert plan == plan_quota(phones, before, 100.0, 60)


async def test_a_freed_slot_goes_to_a_transactional_send_first() -> None:
    slots = Slots(1, bulk_min_share=0.25)
    await slots.acquire()
    order: list[str] = []

    async def send(lane: Lane, name: str) -> None:
        await slots.acquire(lane)
        order.append(name)

    tasks = [asyncio.create_task(send(B, f"b{i}")) for i in range(4)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(send(T, f"t{i}")) for i in range(4)]
    await asyncio.sleep(0)
    for _ in range(8):
        slots.release()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    # Bulk waited first, yet gets one turn in four while transactional waits.
    assert order == ["t0", "t1", "t2", "b0", "t3", "b1", "b2", "b3"]
    assert slots.held == 1
