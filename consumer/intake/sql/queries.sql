-- Intake's queries, loaded once by consumer/intake/store.py (`-- name:` sections).

-- name: lock_campaign
-- Serialises intake's transactions on one campaign (two consumers may briefly overlap
-- during a rebalance); the two-key form keeps clear of single-bigint advisory locks.
SELECT pg_advisory_xact_lock($1::integer, $2::integer)

-- name: campaign_pruned
-- A campaign `broadcast prune` removed (or is removing): its chunks never come back.
SELECT EXISTS (SELECT 1 FROM pruned_campaigns WHERE campaign_id = $1);

-- name: select_campaign
SELECT header_fingerprint, send_at, chunk_count, state, state_reason, sender_spec,
       phone_number_id
FROM campaigns
WHERE campaign_id = $1

-- name: select_campaign_for_update
SELECT header_fingerprint, send_at, chunk_count, state, state_reason, sender_spec,
       phone_number_id
FROM campaigns
WHERE campaign_id = $1
FOR UPDATE

-- name: select_chunk
-- A chunk row written before 0003 has no digest: treated as the same content.
SELECT coalesce(content_sha256, '') AS content_sha256
FROM campaign_chunks
WHERE campaign_id = $1 AND chunk_index = $2

-- name: suppressed_phones
SELECT phone FROM suppressions WHERE phone = ANY($1::text[])

-- name: insert_campaign
INSERT INTO campaigns (
    campaign_id, sender_spec, phone_number_id, template_name, template_language,
    template_components, header_fingerprint, send_at, chunk_count, state, state_reason,
    priority, quiet_hours, quality_guard
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)

-- name: insert_chunk
INSERT INTO campaign_chunks (
    campaign_id, chunk_index, recipient_count, source_topic, source_partition,
    source_offset, content_sha256
)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (campaign_id, chunk_index) DO NOTHING
RETURNING chunk_index

-- name: upsert_ledger
-- One row per phone; the occurrence in the lowest chunk index wins whatever the arrival
-- order, but a row the dispatcher has touched (claimed, attempted, queued, failed) is
-- never changed. A pending row that stays pending keeps the dispatcher's reason.
-- In a cancelled campaign ($3) an eligible row is stored skipped/cancelled.
INSERT INTO ledger AS l (campaign_id, phone, status, reason, components, opted_in_at,
                         opt_in_source, chunk_index)
SELECT $1, t.phone,
       CASE WHEN $3 AND t.status = 'pending' THEN 'skipped' ELSE t.status END,
       CASE WHEN $3 AND t.status = 'pending' THEN 'cancelled' ELSE t.reason END,
       t.components::jsonb, t.opted_in_at, t.opt_in_source, $2
FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::text[])
     AS t(phone, status, reason, components, opted_in_at, opt_in_source)
ON CONFLICT (campaign_id, phone) DO UPDATE
SET status = excluded.status,
    reason = CASE WHEN excluded.status = 'pending' AND l.status = 'pending' THEN l.reason
                  ELSE excluded.reason END,
    components = excluded.components,
    opted_in_at = excluded.opted_in_at,
    opt_in_source = excluded.opt_in_source,
    chunk_index = excluded.chunk_index,
    updated_at = now()
WHERE excluded.chunk_index < l.chunk_index
  AND l.status IN ('pending', 'skipped')
  AND l.attempts = 0
  AND l.claim_token IS NULL
  AND l.uncertain_since IS NULL
RETURNING l.phone, (l.xmax = 0) AS inserted, l.status

-- name: update_campaign_state
UPDATE campaigns
SET state = $2, state_reason = $3, phone_number_id = coalesce($4, phone_number_id),
    updated_at = now()
WHERE campaign_id = $1

-- name: cancel_pending
UPDATE ledger
SET status = 'skipped', reason = 'cancelled', updated_at = now()
WHERE campaign_id = $1 AND status = 'pending'

-- name: remember_control
INSERT INTO intake_early_controls (campaign_id, command, reason, source_topic,
                                   source_partition, source_offset)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING

-- name: early_controls
SELECT command, reason FROM intake_early_controls WHERE campaign_id = $1 ORDER BY seq

-- name: forget_controls
DELETE FROM intake_early_controls WHERE campaign_id = $1

-- name: notify_campaign_state
SELECT pg_notify('campaign_state', $1)

-- name: notify_ledger_pending
SELECT pg_notify('ledger_pending', $1)
