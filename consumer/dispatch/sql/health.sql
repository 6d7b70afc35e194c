-- Named queries of the template-health breaker (loaded by consumer/dispatch/health.py;
-- docs/dispatch.md "Template-health breaker"). One statement per result flush, per
-- reconciler pass, per claim; each reads a campaign's counts as one range of
-- quality_counts' primary key.
--
-- A send or a failure counts only for an active campaign, and only for a message sent
-- since the campaign became active (campaigns.updated_at moves only with its state: its
-- creation, an operator's resume): answers that land after a trip, and late failures of
-- messages sent before a resume, are not counted (breaker.counts_toward).

-- name: count_sends
-- The sends of one result flush (and any health failure answered at once), by campaign
-- and minute ($3: breaker.bucket_of of $2).
INSERT INTO quality_counts AS q (campaign_id, minute, sends, health_failures)
SELECT t.campaign_id, t.minute, sum(t.sends), sum(t.failures)
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::int[])
     AS t(campaign_id, sent_at, minute, sends, failures)
JOIN campaigns AS c ON c.campaign_id = t.campaign_id
WHERE c.state = 'active' AND t.sent_at >= c.updated_at
GROUP BY t.campaign_id, t.minute
ON CONFLICT (campaign_id, minute) DO UPDATE
SET sends = q.sends + excluded.sends,
    health_failures = q.health_failures + excluded.health_failures;

-- name: count_failures
-- Late health failures of one reconciler pass, each counted once (quality_failures: the
-- reconciler reads a waiting entry again), in the minute of the message's send ($4).
-- Returns the campaigns whose counts grew, for the caller to judge.
WITH fresh AS (
    INSERT INTO quality_failures (message_id, campaign_id)
    SELECT t.message_id, t.campaign_id
    FROM unnest($1::text[], $2::uuid[], $3::timestamptz[]) AS t(message_id, campaign_id, sent_at)
    JOIN campaigns AS c ON c.campaign_id = t.campaign_id
    WHERE c.state = 'active' AND t.sent_at >= c.updated_at
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id, campaign_id
)
INSERT INTO quality_counts AS q (campaign_id, minute, sends, health_failures)
SELECT f.campaign_id, t.minute, 0, count(*)
FROM fresh AS f
JOIN unnest($1::text[], $4::timestamptz[]) AS t(message_id, minute) ON t.message_id = f.message_id
GROUP BY f.campaign_id, t.minute
ON CONFLICT (campaign_id, minute) DO UPDATE
SET health_failures = q.health_failures + excluded.health_failures
RETURNING campaign_id;

-- name: campaign_guards
-- The guard options of campaigns that are still active (the reconciler's failures name
-- campaigns it has not claimed).
SELECT campaign_id, quality_guard
FROM campaigns
WHERE campaign_id = ANY($1::uuid[]) AND state = 'active';

-- name: window_tallies
-- Each campaign's sends and health failures from bucket $2 on, and from the bucket of its
-- last activation on: for minutes (multiples of 60 s), `minute > updated_at - 1 minute`
-- is `minute >= bucket_of(updated_at)` (breaker.window_start).
SELECT t.campaign_id,
       COALESCE(sum(q.sends), 0)::bigint AS sends,
       COALESCE(sum(q.health_failures), 0)::bigint AS failures
FROM unnest($1::uuid[], $2::timestamptz[]) AS t(campaign_id, since)
JOIN campaigns AS c ON c.campaign_id = t.campaign_id
LEFT JOIN quality_counts AS q
       ON q.campaign_id = t.campaign_id AND q.minute >= t.since
      AND q.minute > c.updated_at - interval '1 minute'
GROUP BY t.campaign_id;

-- name: trip
-- Pause the campaigns that tripped, as an operator's pause does (state 'paused', a reason,
-- NOTIFY campaign_state so every instance's workers stop within a second), clear their
-- counts (resumed, a campaign starts from zero) and note the figures. Returns only the
-- campaigns this statement paused: one still active when it ran, so a trip found by two
-- instances at once is carried out, logged and counted once.
WITH tripped AS (
    SELECT *
    FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[], $6::float8[],
                $7::text[], $8::text[])
         AS t(campaign_id, rule, window_seconds, sends, health_failures, max_failure_rate,
              quality_before, quality_after)
), paused AS (
    UPDATE campaigns AS c
    SET state = 'paused', state_reason = 'quality_guard', updated_at = now()
    FROM tripped AS t
    WHERE c.campaign_id = t.campaign_id AND c.state = 'active'
    RETURNING c.campaign_id
), cleared AS (
    DELETE FROM quality_counts AS q USING paused AS p WHERE q.campaign_id = p.campaign_id
), noted AS (
    INSERT INTO quality_trips AS r (campaign_id, tripped_at, rule, window_seconds, sends,
                                    health_failures, max_failure_rate, quality_before,
                                    quality_after)
    SELECT t.campaign_id, now(), t.rule, t.window_seconds, t.sends, t.health_failures,
           t.max_failure_rate, t.quality_before, t.quality_after
    FROM tripped AS t
    JOIN paused AS p ON p.campaign_id = t.campaign_id
    ON CONFLICT (campaign_id) DO UPDATE
    SET tripped_at = excluded.tripped_at, rule = excluded.rule,
        window_seconds = excluded.window_seconds, sends = excluded.sends,
        health_failures = excluded.health_failures,
        max_failure_rate = excluded.max_failure_rate,
        quality_before = excluded.quality_before, quality_after = excluded.quality_after
)
SELECT p.campaign_id, pg_notify('campaign_state', p.campaign_id::text) AS notified
FROM paused AS p;

-- name: record_quality
-- Record the number's quality rating; returns the one recorded before (NULL: none) only
-- when it changed, so of instances reading the same change at once one sees it (the
-- other's update finds the new rating already there). A change made while no instance
-- ran is seen by the first refresh after.
WITH before AS (SELECT quality_rating FROM senders WHERE phone_number_id = $1)
INSERT INTO senders AS s (phone_number_id, quality_rating, updated_at) VALUES ($1, $2, now())
ON CONFLICT (phone_number_id) DO UPDATE
SET quality_rating = excluded.quality_rating, updated_at = now()
WHERE s.quality_rating IS DISTINCT FROM excluded.quality_rating
RETURNING (SELECT quality_rating FROM before) AS before;
