"""Keys and bodies are deterministic, so a retry repeats the first request byte for byte."""

from __future__ import annotations

import hashlib

from consumer.dispatch.request import idempotency_key, template_body
from consumer.dispatch.schedule import interleave


def test_the_key_is_the_contracts_sha256() -> None:
    campaign = "c1f0e8b2-7d3a-4f6e-9a2b-3c4d5e6f7a8b"
    expected = hashlib.sha256(f"{campaign}:+628111222333".encode()).hexdigest()
    assert idempotency_key(campaign, "+628111222333") == expected
    assert idempotency_key(campaign, "+628111222333", 1) != expected


def test_the_body_is_byte_identical_across_calls() -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}]
    first = template_body("+628111222333", "promo_flash_sale", "id_ID", components)
    again = template_body(
        "+628111222333", "promo_flash_sale", "id_ID", [dict(c) for c in components]
    )
    assert first == again
    assert first.startswith(
        b'{"messaging_product":"whatsapp","to":"+628111222333","type":"template"'
    )


def test_interleave_is_round_robin() -> None:
    batches: list[list[int | str]] = [[1, 2, 3], ["a"], [10, 20]]
    assert interleave(batches) == [1, "a", 10, 2, 20, 3]
    empty: list[list[int]] = []
    assert interleave(empty) == []
