-- Queries of the status projector (loaded by projector/store.py).
--
-- upsert_statuses merges a batch of rows, already folded in Python to one per
-- message_id and sorted by it (a fixed lock order), with the stored row by the join of
-- projector/fold.py `merge`: LEAST of each status time, GREATEST of updated_at, the
-- error details of the smaller (failed_at, code, provider code, message), and the
-- smallest of the identifiers. Text comparisons use COLLATE "C" (code-point order), as
-- Python's do. Times arrive as Unix seconds.

-- name: upsert_statuses
-- Also the rebuild's statement: it runs with search_path = projector_rebuild, public,
-- so the same text writes the scratch table.
INSERT INTO message_statuses AS ms (
    message_id, wamid, phone_number_id, recipient_id,
    sent_at, delivered_at, read_at, failed_at,
    error_code, provider_code, error_message, updated_at)
SELECT u.message_id, u.wamid, u.phone_number_id, u.recipient_id,
       to_timestamp(u.sent_at), to_timestamp(u.delivered_at),
       to_timestamp(u.read_at), to_timestamp(u.failed_at),
       u.error_code, u.provider_code, u.error_message, to_timestamp(u.updated_at)
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
            $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
            $9::text[], $10::integer[], $11::text[], $12::bigint[])
    AS u (message_id, wamid, phone_number_id, recipient_id,
          sent_at, delivered_at, read_at, failed_at,
          error_code, provider_code, error_message, updated_at)
ON CONFLICT (message_id) DO UPDATE SET
    wamid = LEAST(ms.wamid COLLATE "C", excluded.wamid COLLATE "C"),
    phone_number_id = LEAST(ms.phone_number_id COLLATE "C", excluded.phone_number_id COLLATE "C"),
    recipient_id = LEAST(ms.recipient_id COLLATE "C", excluded.recipient_id COLLATE "C"),
    sent_at = LEAST(ms.sent_at, excluded.sent_at),
    delivered_at = LEAST(ms.delivered_at, excluded.delivered_at),
    read_at = LEAST(ms.read_at, excluded.read_at),
    failed_at = LEAST(ms.failed_at, excluded.failed_at),
    -- The earliest failure's details, ties broken by code, provider code, message.
    (error_code, provider_code, error_message) = (
        SELECT f.code, f.provider, f.message
        FROM (VALUES (ms.failed_at, ms.error_code, ms.provider_code, ms.error_message),
                     (excluded.failed_at, excluded.error_code, excluded.provider_code,
                      excluded.error_message)) AS f (failed_at, code, provider, message)
        WHERE f.failed_at IS NOT NULL
        ORDER BY f.failed_at, f.code IS NULL, f.code COLLATE "C",
                 f.provider IS NULL, f.provider, f.message IS NULL, f.message COLLATE "C"
        LIMIT 1),
    updated_at = GREATEST(ms.updated_at, excluded.updated_at)

-- name: insert_suppressions
-- Permanent recipient errors; an existing suppression (any source) is left as it is.
INSERT INTO suppressions (phone, reason, source, created_at)
SELECT s.phone, s.reason, 'webhook', to_timestamp(s.since)
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS s (phone, reason, since)
ON CONFLICT (phone) DO NOTHING

-- name: insert_rejects
-- Records set aside (see migration 0004); a position already recorded is left as it is,
-- so a redelivery, a replay or a rebuild records it once. Returns the new ones only.
INSERT INTO status_rejects (source_topic, source_partition, source_offset, message_key,
                            raw_value, reason, sqlstate, detail)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bytea[], $5::bytea[],
                     $6::text[], $7::text[], $8::text[])
ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
RETURNING source_topic, source_partition, source_offset

-- name: lock_failures
-- Held from just before the failures' insert to the commit: status_failures.seq is then
-- in commit order, so the reconciler's cursor never passes a seq committed later.
SELECT pg_advisory_xact_lock(hashtextextended('status_failures', 0))

-- name: record_failures
-- Messages this batch reported failed (migration 0006); one already recorded is left as
-- it is, so a redelivery or a replay adds nothing. Returns how many are new.
WITH added AS (
    INSERT INTO status_failures (message_id)
    SELECT u.message_id
    FROM unnest($1::text[]) AS u (message_id)
    WHERE NOT EXISTS (SELECT 1 FROM status_failures AS f WHERE f.message_id = u.message_id)
    ORDER BY u.message_id
    ON CONFLICT (message_id) DO NOTHING
    RETURNING 1)
SELECT count(*) FROM added

-- name: notify_failures
-- Wakes the dispatchers' reconcilers (they LISTEN on status_failed); delivered on commit.
SELECT pg_notify('status_failed', '')

-- name: try_rebuild_lock
-- One rebuild at a time; a session lock, released by release_rebuild_lock or on disconnect.
SELECT pg_try_advisory_lock(hashtextextended('projector.rebuild', 0))

-- name: release_rebuild_lock
SELECT pg_advisory_unlock(hashtextextended('projector.rebuild', 0))

-- name: create_rebuild_schema
CREATE SCHEMA IF NOT EXISTS projector_rebuild

-- name: create_rebuild
-- Scratch space made at run time rather than by a migration: LIKE copies whatever
-- message_statuses looks like today, so the final INSERT ... SELECT * always lines up.
-- UNLOGGED: it is rebuilt from Kafka whenever needed and need not survive a crash.
CREATE UNLOGGED TABLE projector_rebuild.message_statuses
    (LIKE public.message_statuses INCLUDING ALL)

-- name: drop_rebuild
DROP TABLE IF EXISTS projector_rebuild.message_statuses

-- name: use_rebuild_table
-- Unqualified message_statuses now means the scratch table; suppressions stay live.
SET search_path TO projector_rebuild, public

-- name: lock_statuses
-- Blocks the live projector's upserts (not readers) until the swap commits, so that
-- everything it folded before the lock is below the offsets the rebuild catches up to.
LOCK TABLE public.message_statuses IN SHARE ROW EXCLUSIVE MODE

-- name: delete_statuses
DELETE FROM public.message_statuses

-- name: copy_rebuild_into_statuses
INSERT INTO public.message_statuses SELECT * FROM projector_rebuild.message_statuses

-- name: count_rebuild
SELECT count(*) FROM projector_rebuild.message_statuses
