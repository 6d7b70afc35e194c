-- Named queries of the operator console (loaded by console/store.py). The console reads
-- the public views and the tables behind them; its only write is its audit trail.

-- name: campaigns_page
-- Newest first, keyset-free paging (pages are short and the index is on created_at).
SELECT c.campaign_id, c.state, c.state_reason, c.phone_number_id, c.template_name,
       c.template_language, c.chunk_count, c.created_at, c.updated_at, c.send_at,
       c.priority, c.quiet_hours, c.quality_guard,
       (SELECT count(*) FROM campaign_chunks AS k WHERE k.campaign_id = c.campaign_id)
           AS chunks_received,
       (SELECT coalesce(sum(k.recipient_count), 0) FROM campaign_chunks AS k
        WHERE k.campaign_id = c.campaign_id) AS recipients_received
FROM campaigns AS c
WHERE ($1::text IS NULL OR c.state = $1)
ORDER BY c.created_at DESC, c.campaign_id
LIMIT $2 OFFSET $3;

-- name: campaigns_count
SELECT count(*) FROM campaigns WHERE ($1::text IS NULL OR state = $1);

-- name: campaign
SELECT c.campaign_id, c.state, c.state_reason, c.phone_number_id, c.template_name,
       c.template_language, c.chunk_count, c.created_at, c.updated_at, c.send_at,
       c.priority, c.quiet_hours, c.quality_guard,
       (SELECT count(*) FROM campaign_chunks AS k WHERE k.campaign_id = c.campaign_id)
           AS chunks_received,
       (SELECT coalesce(sum(k.recipient_count), 0) FROM campaign_chunks AS k
        WHERE k.campaign_id = c.campaign_id) AS recipients_received
FROM campaigns AS c
WHERE c.campaign_id = $1;

-- name: campaign_tally
-- One pass over the campaign's recipients (index-backed per row, 0008): the counts by
-- status, reason and error code that every figure of the campaign page is made of.
SELECT status, reason, error_code, count(*) AS count, max(updated_at) AS updated_at
FROM campaign_recipient_status
WHERE campaign_id = $1
GROUP BY status, reason, error_code;

-- name: campaign_throughput
-- Accepted sends over time, in at most $2 buckets between the first and last acceptance.
WITH accepted AS (
    SELECT extract(epoch FROM queued_at) AS t
    FROM ledger
    WHERE campaign_id = $1 AND queued_at IS NOT NULL
), span AS (
    SELECT min(t) AS lo, max(t) AS hi FROM accepted
)
SELECT width_bucket(a.t, s.lo, s.hi + 0.001, $2) AS bucket, count(*) AS count,
       min(s.lo) AS lo, min(s.hi) AS hi
FROM accepted AS a, span AS s
GROUP BY 1
ORDER BY 1;

-- name: sender
SELECT phone_number_id, state, state_reason, tier, quota_hold_until, updated_at
FROM senders
WHERE phone_number_id = $1;

-- name: senders
SELECT phone_number_id, state, state_reason, tier, quota_hold_until, updated_at
FROM senders
ORDER BY phone_number_id;

-- name: quota_used
-- Unique recipients contacted in the rolling window, per budget key (quota_contacts_recent).
SELECT count(*) FROM quota_contacts WHERE budget_key = $1 AND last_contact_at >= $2;

-- name: sender_owners
-- Which dispatcher session holds each sender's ownership lock (consumer/dispatch/
-- ownership.py takes pg_try_advisory_lock(hashtextextended('sender:' || id, 0))); the
-- holder's application_name names its instance. Read from PostgreSQL's own lock table:
-- no bookkeeping that could disagree with the locks themselves.
SELECT s.phone_number_id, a.application_name, a.client_addr::text AS client_addr, a.pid
FROM unnest($1::text[]) AS s(phone_number_id)
JOIN pg_locks AS l
  ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
 AND ((l.classid::bigint << 32) | l.objid::bigint)
     = hashtextextended('sender:' || s.phone_number_id, 0)
JOIN pg_stat_activity AS a ON a.pid = l.pid;

-- name: recipient_messages
-- One phone across campaigns, newest campaign first, with the opt-in each send relied on
-- (the ledger row behind the view's, by its primary key).
SELECT r.campaign_id, c.template_name, c.phone_number_id, c.created_at, r.status, r.reason,
       r.message_id, r.error_code, r.error_message, r.updated_at,
       l.opted_in_at, l.opt_in_source
FROM campaign_recipient_status AS r
JOIN campaigns AS c USING (campaign_id)
JOIN ledger AS l ON l.campaign_id = r.campaign_id AND l.phone = r.phone
WHERE r.phone = $1
ORDER BY c.created_at DESC
LIMIT $2;

-- name: record_action
INSERT INTO console_actions (actor, role, action, campaign_id, detail, outcome)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING action_id, at;

-- name: campaign_actions
SELECT action_id, at, actor, role, action, detail, outcome
FROM console_actions
WHERE campaign_id = $1
ORDER BY at DESC
LIMIT $2;

-- name: recent_actions
SELECT action_id, at, actor, role, action, campaign_id, detail, outcome
FROM console_actions
ORDER BY at DESC
LIMIT $1;
