-- The console bench's database (bench/console.py), generated in SQL: no client round
-- trip per row. Parameters are named in each statement's comment.
--
-- 20 senders (106540352250000 + 0..19; the last one stopped). One campaign of $N
-- recipients, mid-flight on sender 0: ~91% accepted (queued with a message id, most of
-- those delivered or read, some failed later with provider codes, some only sent or not
-- reported yet), 4% pending (deferred by the quota, backing off, or not tried yet), 3%
-- skipped with five reasons, 2% failed at send time with four codes; its sends spread
-- over the hour since it started. Beside it, a history of finished campaigns of 10,000
-- recipients, one every 72 minutes over the senders, whose audiences overlap the big
-- campaign's (a phone is in a few campaigns, as audiences are).

-- name: set_indexes_aside
-- The big tables' indexes are built after their rows, each in one sorted pass (as in
-- tests/scale/seed.sql); their definitions are kept to rebuild them as the migrations
-- made them.
CREATE TEMP TABLE seed_indexes AS
SELECT i.indexrelid::regclass::text AS name, t.relname AS table_name,
       pg_get_indexdef(i.indexrelid) AS definition,
       c.conname AS constraint_name, pg_get_constraintdef(c.oid) AS constraint_definition
FROM pg_index AS i
JOIN pg_class AS t ON t.oid = i.indrelid
LEFT JOIN pg_constraint AS c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u')
WHERE t.relname IN ('ledger', 'message_statuses', 'quota_contacts')
  AND t.relnamespace = 'public'::regnamespace;

-- name: drop_indexes
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM seed_indexes LOOP
        IF r.constraint_name IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', r.table_name, r.constraint_name);
        ELSE
            EXECUTE format('DROP INDEX %s', r.name);
        END IF;
    END LOOP;
END $$;

-- name: senders
-- $1: the tier of the odd senders (the even ones are unlimited, as the big one is).
INSERT INTO senders (phone_number_id, tier, state, state_reason, state_changed_at, updated_at)
SELECT (106540352250000 + s)::text, CASE WHEN s % 2 = 1 THEN $1::bigint END,
       CASE WHEN s = 19 THEN 'stopped' ELSE 'active' END,
       CASE WHEN s = 19 THEN 'account_restricted' END,
       CASE WHEN s = 19 THEN now() - interval '3 days' END, now() - interval '3 days'
FROM generate_series(0, 19) AS s;

-- name: big_campaign
-- $1: campaign id, $2: recipients, $3: chunk size.
INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                       template_language, template_components, header_fingerprint,
                       chunk_count, state, created_at, updated_at)
VALUES ($1::uuid, 'auto', '106540352250000', 'promo_year_end', 'id_ID',
        '[{"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"}]}]',
        'bench-console', ($2::int + $3::int - 1) / $3::int, 'active',
        now() - interval '65 minutes', now() - interval '20 minutes');

-- name: big_chunks
-- $1: campaign id, $2: recipients, $3: chunk size.
INSERT INTO campaign_chunks (campaign_id, chunk_index, recipient_count, source_topic,
                             source_partition, source_offset, received_at)
SELECT $1::uuid, i, least($3::int, $2::int - i * $3::int), 'broadcast.requests', i % 6, i / 6,
       now() - interval '65 minutes'
FROM generate_series(0, ($2::int + $3::int - 1) / $3::int - 1) AS i;

-- name: big_ledger
-- $1: campaign id, $2: recipients, $3: chunk size. h: a stable pseudo-random number
-- per row (the status mix); the row's place in the audience spreads its send time.
INSERT INTO ledger (campaign_id, phone, status, reason, chunk_index, message_id, attempts,
                    next_attempt_at, last_attempt_at, queued_at, error_code, error_message,
                    opted_in_at, created_at, updated_at)
SELECT $1::uuid, '+62812' || lpad(n::text, 8, '0'), st.status,
       CASE WHEN st.status = 'skipped' THEN (ARRAY['not_opted_in', 'invalid_phone',
                'suppressed', 'duplicate', 'missing_variable'])[h % 5 + 1]
            WHEN st.status = 'pending' AND h % 4 = 0 THEN 'deferred_quota'
            WHEN st.status = 'pending' AND h % 4 = 1 THEN 'retry_backoff' END,
       n / $3::int,
       CASE WHEN st.status = 'queued' THEN 'msg_B' || lpad(n::text, 22, '0') END,
       CASE WHEN st.status = 'failed' THEN 4 WHEN st.status = 'queued' THEN 1
            WHEN st.status = 'pending' AND h % 4 = 1 THEN 2 ELSE 0 END,
       CASE WHEN st.status = 'pending' AND h % 4 = 0 THEN now() + interval '5 hours'
            WHEN st.status = 'pending' AND h % 4 = 1 THEN now() + interval '30 seconds' END,
       CASE WHEN st.status IN ('queued', 'failed') OR (st.status = 'pending' AND h % 4 = 1)
            THEN sent END,
       CASE WHEN st.status = 'queued' THEN sent END,
       CASE WHEN st.status = 'failed' THEN (ARRAY['retries_exhausted', 'invalid_phone_number',
                'outcome_unknown', 'phone_number_forbidden'])[h % 4 + 1] END,
       CASE WHEN st.status = 'failed' THEN 'gave up after 4 attempts' END,
       now() - interval '30 days', now() - interval '65 minutes',
       CASE WHEN st.status = 'skipped' THEN now() - interval '65 minutes' ELSE sent END
FROM generate_series(0, $2::int - 1) AS n
CROSS JOIN LATERAL (SELECT (hashint4(n) & 2147483647) % 1000 AS h,
                           now() - interval '60 minutes'
                               + make_interval(secs => 3600.0 * n / $2::int) AS sent) AS hh
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN h < 40 THEN 'pending'
        WHEN h < 70 THEN 'skipped'
        WHEN h < 90 THEN 'failed'
        ELSE 'queued'
    END AS status) AS st;

-- name: history_campaigns
-- $1: campaigns. Sender c % 20; one every 72 minutes before the big one; every 40th
-- was cancelled by an operator.
INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                       template_language, template_components, header_fingerprint,
                       chunk_count, state, state_reason, created_at, updated_at)
SELECT md5('console:history:' || c)::uuid, (106540352250000 + c % 20)::text,
       (106540352250000 + c % 20)::text,
       (ARRAY['promo_flash_sale', 'order_update', 'payday_reminder'])[c % 3 + 1], 'id_ID',
       '[{"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"}]}]',
       'bench-console', 2,
       CASE WHEN c % 40 = 0 THEN 'cancelled' ELSE 'active' END,
       CASE WHEN c % 40 = 0 THEN 'operator: wrong audience' END,
       now() - make_interval(mins => 60 + 72 * c), now() - make_interval(mins => 20 + 72 * c)
FROM generate_series(1, $1::int) AS c;

-- name: history_chunks
-- $1: campaigns, $2: recipients per campaign (two chunks each).
INSERT INTO campaign_chunks (campaign_id, chunk_index, recipient_count, source_topic,
                             source_partition, source_offset, received_at)
SELECT md5('console:history:' || c)::uuid, i, $2::int / 2, 'broadcast.requests', c % 6, c * 2 + i,
       now() - make_interval(mins => 60 + 72 * c)
FROM generate_series(1, $1::int) AS c CROSS JOIN generate_series(0, 1) AS i;

-- name: history_ledger
-- $1: campaigns, $2: recipients per campaign, $3: the audience's phone space (phones
-- '+62812' || 8 digits, as the big campaign's: a window of it per campaign).
INSERT INTO ledger (campaign_id, phone, status, reason, chunk_index, message_id, attempts,
                    last_attempt_at, queued_at, error_code, error_message, opted_in_at,
                    created_at, updated_at)
SELECT md5('console:history:' || c)::uuid,
       '+62812' || lpad(((c * 7919 + r) % $3::int)::text, 8, '0'), st.status,
       CASE WHEN st.status = 'skipped' AND c % 40 = 0 AND h < 970 THEN 'cancelled'
            WHEN st.status = 'skipped' THEN (ARRAY['not_opted_in', 'suppressed',
                'duplicate'])[h % 3 + 1] END,
       r / ($2::int / 2),
       CASE WHEN st.status = 'queued' THEN 'msg_H' || c || '_' || r END,
       CASE WHEN st.status IN ('queued', 'failed') THEN 1 ELSE 0 END,
       CASE WHEN st.status IN ('queued', 'failed') THEN sent END,
       CASE WHEN st.status = 'queued' THEN sent END,
       CASE WHEN st.status = 'failed' THEN (ARRAY['invalid_phone_number',
                'retries_exhausted'])[h % 2 + 1] END,
       CASE WHEN st.status = 'failed' THEN 'gave up' END,
       now() - interval '90 days', sent, sent
FROM generate_series(1, $1::int) AS c
CROSS JOIN LATERAL generate_series(0, $2::int - 1) AS r
CROSS JOIN LATERAL (SELECT (hashint4(c * 1000003 + r) & 2147483647) % 1000 AS h,
                           now() - make_interval(mins => 60 + 72 * c)
                               + make_interval(secs => 0.3 * r) AS sent) AS hh
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN c % 40 = 0 AND h >= 800 THEN 'skipped'
        WHEN h >= 970 THEN 'skipped'
        WHEN h >= 950 THEN 'failed'
        ELSE 'queued'
    END AS status) AS st;

-- name: statuses
-- One row per accepted message, as the projector folds them, but 3% of them not
-- reported yet (still queued). k: pseudo-random per message; 10% only sent, 5% failed
-- (provider codes), the rest delivered, 55% of all read.
INSERT INTO message_statuses (message_id, wamid, phone_number_id, recipient_id, sent_at,
                              delivered_at, read_at, failed_at, error_code, provider_code,
                              error_message, updated_at)
SELECT l.message_id, 'wamid.' || l.message_id, c.phone_number_id, ltrim(l.phone, '+'),
       t + interval '2 seconds',
       CASE WHEN k >= 180 THEN t + interval '5 seconds' END,
       CASE WHEN k >= 450 THEN t + interval '90 seconds' END,
       CASE WHEN k >= 130 AND k < 180 THEN t + interval '4 seconds' END,
       CASE WHEN k >= 130 AND k < 180 THEN (ARRAY['recipient_not_on_whatsapp',
                'recipient_blocked', 'ecosystem_engagement'])[k % 3 + 1] END,
       CASE WHEN k >= 130 AND k < 180 THEN (ARRAY[131026, 1013, 131049])[k % 3 + 1] END,
       CASE WHEN k >= 130 AND k < 180 THEN 'reported by the provider' END,
       t + CASE WHEN k >= 450 THEN interval '90 seconds' ELSE interval '5 seconds' END
FROM ledger AS l
JOIN campaigns AS c USING (campaign_id)
CROSS JOIN LATERAL (SELECT (hashtext(l.message_id) & 2147483647) % 1000 AS k,
                           l.queued_at AS t) AS kk
WHERE l.message_id IS NOT NULL AND k >= 30;

-- name: contacts
-- The rolling quota window's first contacts ('number:' budget keys, as the dispatcher
-- keeps them): every recipient tried in the last two days, the big campaign's included.
INSERT INTO quota_contacts (budget_key, phone, last_contact_at)
SELECT 'number:' || c.phone_number_id, l.phone, max(l.last_attempt_at)
FROM ledger AS l
JOIN campaigns AS c USING (campaign_id)
WHERE l.last_attempt_at > now() - interval '2 days'
GROUP BY 1, 2;

-- name: restore_indexes
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM seed_indexes LOOP
        IF r.constraint_name IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', r.table_name,
                           r.constraint_name, r.constraint_definition);
        ELSE
            EXECUTE r.definition;
        END IF;
    END LOOP;
END $$;

-- name: actions
-- $1: the big campaign. What operators did to it, as the console records it.
INSERT INTO console_actions (at, actor, role, action, campaign_id, detail, outcome)
VALUES (now() - interval '50 minutes', 'ops-ani', 'operator', 'pause', $1::uuid, 'quality check',
        'ok: pause published'),
       (now() - interval '45 minutes', 'ops-ani', 'operator', 'resume', $1::uuid, NULL,
        'ok: resume published'),
       (now() - interval '30 minutes', 'ops-budi', 'operator', 'retry', $1::uuid, NULL,
        'ok: 1,204 re-queued');

-- name: sizes
SELECT (SELECT count(*) FROM ledger) AS ledger_rows,
       (SELECT count(*) FROM message_statuses) AS statuses,
       (SELECT count(*) FROM quota_contacts) AS contacts,
       (SELECT count(*) FROM campaigns) AS campaigns,
       pg_total_relation_size('ledger') AS ledger_bytes;
