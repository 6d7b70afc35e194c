"""Campaigns as the pipeline leaves them, written in SQL, for the console's tests.

`seed_campaign` writes the campaign row, its chunk, its ledger rows and the statuses of
its accepted messages: a realistic mix (read, delivered, sent, failed at send time with
several codes, failed after acceptance, pending with reasons, skipped with reasons), with
the opt-in each recipient came with (`opted_in_at`; a source for two in three).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

SENDER = "106540352242922"


@dataclass(frozen=True, slots=True)
class Seeded:
    campaign_id: uuid.UUID
    sender: str
    phones: list[str]


def phone_of(prefix: str, n: int) -> str:
    return f"+62{prefix}{n:08d}"


async def seed_campaign(
    pool: asyncpg.Pool,
    recipients: int,
    *,
    sender: str = SENDER,
    prefix: str = "812",
    template: str = "promo_flash_sale",
    state: str = "active",
) -> Seeded:
    campaign_id = uuid.uuid4()
    tag = campaign_id.hex[:8]
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                   template_language, template_components, header_fingerprint, chunk_count,
                   state)
               VALUES ($1, $2, $2, $3, 'id_ID', '[]', 'console-test', 1, $4)""",
            campaign_id,
            sender,
            template,
            state,
        )
        await connection.execute(
            """INSERT INTO campaign_chunks (campaign_id, chunk_index, recipient_count,
                   source_topic, source_partition, source_offset)
               VALUES ($1, 0, $2, 'broadcast.requests', 0, 0)""",
            campaign_id,
            recipients,
        )
        # n % 20: 0 failed at send time (three codes), 1 pending deferred, 2 pending, 3
        # skipped not opted in, 4 skipped invalid phone; the rest accepted (queued with a
        # message id), whose statuses below make them read, delivered, sent or failed.
        await connection.execute(
            """INSERT INTO ledger (campaign_id, phone, status, reason, chunk_index, message_id,
                   error_code, error_message, queued_at, attempts, updated_at, opted_in_at,
                   opt_in_source)
               SELECT $1, '+62' || $3::text || lpad(n::text, 8, '0'),
                 CASE n % 20 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending' WHEN 2 THEN 'pending'
                             WHEN 3 THEN 'skipped' WHEN 4 THEN 'skipped' ELSE 'queued' END,
                 CASE n % 20 WHEN 1 THEN 'deferred_quota' WHEN 3 THEN 'not_opted_in'
                             WHEN 4 THEN 'invalid_phone' END,
                 0,
                 CASE WHEN n % 20 >= 5 THEN 'msg_' || $4::text || '_' || n END,
                 CASE WHEN n % 20 = 0 THEN (ARRAY['rate_limit_exceeded', 'recipient_blocked',
                                                  'outcome_unknown'])[1 + (n / 20) % 3] END,
                 CASE WHEN n % 20 = 0 THEN 'as the API said' END,
                 CASE WHEN n % 20 >= 5 THEN now() - make_interval(secs => ($2::int - n) / 50.0) END,
                 CASE WHEN n % 20 = 2 THEN 0 ELSE 1 END,
                 now(),
                 CASE WHEN n % 20 <> 3 THEN timestamptz '2026-01-05 10:00:00+00' END,
                 (ARRAY['checkout_form', 'crm:import-2026-11', NULL])[1 + n % 3]
               FROM generate_series(1, $2::int) AS n""",
            campaign_id,
            recipients,
            prefix,
            tag,
        )
        await connection.execute(
            """INSERT INTO message_statuses (message_id, phone_number_id, recipient_id, sent_at,
                   delivered_at, read_at, failed_at, error_code, error_message, updated_at)
               SELECT 'msg_' || $2::text || '_' || n, $3, '62' || $4::text || lpad(n::text, 8, '0'),
                 now(),
                 CASE WHEN n % 20 BETWEEN 5 AND 15 THEN now() END,
                 CASE WHEN n % 20 BETWEEN 5 AND 10 THEN now() END,
                 CASE WHEN n % 20 = 19 THEN now() END,
                 CASE WHEN n % 20 = 19 THEN 'recipient_not_on_whatsapp' END,
                 CASE WHEN n % 20 = 19 THEN 'not a WhatsApp number' END,
                 now()
               FROM generate_series(1, $1::int) AS n
               WHERE n % 20 >= 5 AND n % 20 <> 18""",
            recipients,
            tag,
            sender,
            prefix,
        )
        await connection.execute(
            """INSERT INTO senders (phone_number_id, tier, state, updated_at)
               VALUES ($1, 100000, 'active', now())
               ON CONFLICT (phone_number_id) DO NOTHING""",
            sender,
        )
        await connection.execute(
            """INSERT INTO quota_contacts (budget_key, phone, last_contact_at)
               SELECT 'number:' || $1::text, phone, now() FROM ledger
               WHERE campaign_id = $2 AND message_id IS NOT NULL
               ON CONFLICT DO NOTHING""",
            sender,
            campaign_id,
        )
    phones = [phone_of(prefix, n) for n in range(1, recipients + 1)]
    return Seeded(campaign_id, sender, phones)
