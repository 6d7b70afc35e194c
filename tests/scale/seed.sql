-- A large history for tests/scale/test_plans.py, generated in SQL (no COPY, no client
-- round trip per row). $n parameters: none; sizes are the constants below, which the test
-- reads back from the tables.
--
-- 20 senders; 191 campaigns: one of 100,000 recipients and 190 of 10,000 (2,000,000
-- ledger rows). Campaigns 1-6 are mid-flight (a third of their rows pending, some
-- deferred, some held by a worker); the rest are finished: ~95% accepted (queued with a
-- message id), 3% skipped, 2% failed at send time. Of the accepted messages, ~90% were
-- delivered or read, 5% failed (and half of those later delivered), 5% only sent.
-- Recipients overlap between campaigns, as audiences do.

-- name: set_indexes_aside
-- The big tables' indexes are built after their rows, each in one sorted pass: several
-- times faster than maintaining them row by row. Their definitions are kept to rebuild
-- them exactly as the migrations made them.
CREATE TEMP TABLE seed_indexes AS
SELECT i.indexrelid::regclass::text AS name, t.relname AS table_name,
       pg_get_indexdef(i.indexrelid) AS definition,
       c.conname AS constraint_name, pg_get_constraintdef(c.oid) AS constraint_definition
FROM pg_index AS i
JOIN pg_class AS t ON t.oid = i.indrelid
LEFT JOIN pg_constraint AS c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u')
WHERE t.relname IN ('ledger', 'message_statuses') AND t.relnamespace = 'public'::regnamespace;

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
INSERT INTO senders (phone_number_id, tier, state, updated_at)
SELECT (106540352240000 + s)::text, CASE WHEN s % 2 = 0 THEN 100000 END, 'active', now()
FROM generate_series(1, 20) AS s;

-- name: campaigns
INSERT INTO campaigns (campaign_id, sender_spec, phone_number_id, template_name,
                       template_language, template_components, header_fingerprint,
                       chunk_count, state, created_at, updated_at)
SELECT md5('campaign:' || c)::uuid, (106540352240000 + 1 + c % 20)::text,
       (106540352240000 + 1 + c % 20)::text, 'promo_flash_sale', 'id_ID',
       '[{"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"}]}]',
       'seed', 1, CASE WHEN c = 5 THEN 'paused' ELSE 'active' END,
       now() - make_interval(hours => 200 - c), now() - make_interval(hours => 200 - c)
FROM generate_series(1, 191) AS c;

-- name: chunks
INSERT INTO campaign_chunks (campaign_id, chunk_index, recipient_count)
SELECT md5('campaign:' || c)::uuid, 0, CASE WHEN c = 1 THEN 100000 ELSE 10000 END
FROM generate_series(1, 191) AS c;

-- name: ledger
-- h: a stable pseudo-random number per row, for the status mix.
INSERT INTO ledger (campaign_id, phone, status, reason, chunk_index, message_id,
                    attempts, next_attempt_at, last_attempt_at, queued_at, claim_token,
                    error_code, created_at, updated_at)
SELECT md5('campaign:' || c)::uuid,
       '+628' || lpad(((r * 7919) % 1000000000)::text, 9, '0'),
       st.status,
       CASE WHEN st.status = 'skipped' THEN 'not_opted_in'
            WHEN st.status = 'pending' AND h % 7 = 0 THEN 'deferred_quota' END,
       0,
       CASE WHEN st.status = 'queued' THEN 'msg_' || c || '_' || r END,
       CASE WHEN st.status IN ('queued', 'failed') THEN 1 ELSE 0 END,
       CASE WHEN st.status = 'pending' AND h % 7 = 0 THEN now() + interval '3 hours' END,
       CASE WHEN st.status IN ('queued', 'failed') THEN now() - interval '1 hour' END,
       CASE WHEN st.status = 'queued' THEN now() - interval '1 hour' END,
       CASE WHEN st.status = 'pending' AND h % 11 = 0 THEN md5('token:' || c)::uuid END,
       CASE WHEN st.status = 'failed' THEN 'invalid_phone_number' END,
       now() - interval '2 hours', now() - interval '1 hour'
FROM generate_series(1, 191) AS c
CROSS JOIN LATERAL generate_series(1, CASE WHEN c = 1 THEN 100000 ELSE 10000 END) AS r
CROSS JOIN LATERAL (SELECT (hashint4(c * 1000003 + r) & 2147483647) % 1000 AS h) AS hh
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN c <= 6 AND h < 330 THEN 'pending'
        WHEN h >= 970 THEN 'skipped'
        WHEN h >= 950 THEN 'failed'
        ELSE 'queued'
    END AS status) AS st;

-- name: statuses
-- One row per accepted message, as the projector folds them.
INSERT INTO message_statuses (message_id, wamid, phone_number_id, recipient_id, sent_at,
                              delivered_at, read_at, failed_at, error_code, provider_code,
                              updated_at)
SELECT l.message_id, 'wamid.' || l.message_id, c.phone_number_id, ltrim(l.phone, '+'),
       t, CASE WHEN k < 900 OR k % 2 = 0 AND k < 950 THEN t + interval '5 seconds' END,
       CASE WHEN k < 500 THEN t + interval '60 seconds' END,
       CASE WHEN k >= 900 AND k < 950 THEN t + interval '3 seconds' END,
       CASE WHEN k >= 900 AND k < 950 THEN 'recipient_not_on_whatsapp' END,
       CASE WHEN k >= 900 AND k < 950 THEN 131026 END,
       t + interval '60 seconds'
FROM ledger AS l
JOIN campaigns AS c USING (campaign_id)
CROSS JOIN LATERAL (SELECT (hashtext(l.message_id) & 2147483647) % 1000 AS k,
                           now() - interval '1 hour' AS t) AS kk
WHERE l.message_id IS NOT NULL;

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

-- name: failures
-- The reconciler's backlog: every failure recorded, all read past but the last few.
INSERT INTO status_failures (message_id, recorded_at)
SELECT message_id, failed_at FROM message_statuses
WHERE failed_at IS NOT NULL
ORDER BY failed_at, message_id;

-- name: cursor
UPDATE failure_cursor SET seq = (SELECT max(seq) - 20 FROM status_failures);

-- name: waits
INSERT INTO failure_waits (seq, check_at)
SELECT seq, now() + interval '10 seconds' FROM status_failures ORDER BY seq DESC LIMIT 50;

-- name: contacts
-- Every sender's recent first contacts (the rolling quota window).
INSERT INTO quota_contacts (budget_key, phone, last_contact_at)
SELECT (106540352240000 + s)::text, '+628' || lpad(((r * 7919) % 1000000000)::text, 9, '0'),
       now() - make_interval(secs => r % 80000)
FROM generate_series(1, 20) AS s CROSS JOIN generate_series(1, 20000) AS r;

-- name: suppressions
INSERT INTO suppressions (phone, reason, source)
SELECT '+' || recipient_id, 'recipient_not_on_whatsapp', 'webhook'
FROM message_statuses WHERE error_code = 'recipient_not_on_whatsapp'
ON CONFLICT (phone) DO NOTHING;
