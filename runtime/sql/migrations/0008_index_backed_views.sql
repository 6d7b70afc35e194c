-- campaign_recipient_status (and the views built on it) read each recipient's status by
-- its message id, one index lookup per row, whatever the campaign's size.
--
-- As a plain LEFT JOIN, the planner may prefer a hash join that reads all of
-- message_statuses once: on a history of ~2M statuses it did so even for a campaign of
-- 10,000 (tests/scale/test_plans.py), and that read grows with every campaign ever sent.
-- A LATERAL subquery that cannot be flattened (OFFSET 0) is looked up per row instead,
-- through the primary key. Same columns, same rows: only the plan changes.
CREATE OR REPLACE VIEW campaign_recipient_status AS
SELECT
    l.campaign_id,
    l.phone,
    -- Once a message id is known, the webhook fold says where the message is; a
    -- failure the dispatcher recorded stays visible until a later status overrides it.
    CASE
        WHEN l.status IN ('queued', 'failed') AND l.message_id IS NOT NULL
            THEN COALESCE(message_status_of(ms.row), l.status)
        ELSE l.status
    END AS status,
    CASE
        WHEN l.status = 'skipped' THEN l.reason
        WHEN l.status <> 'pending' THEN NULL
        WHEN c.state IN ('paused', 'stopped') OR s.state = 'stopped' THEN 'paused'
        WHEN c.send_at > now() THEN 'scheduled'
        ELSE l.reason
    END AS reason,
    l.message_id,
    COALESCE((ms.row).error_code, l.error_code) AS error_code,
    COALESCE((ms.row).error_message, l.error_message) AS error_message,
    GREATEST(l.updated_at, (ms.row).updated_at) AS updated_at
FROM ledger AS l
JOIN campaigns AS c USING (campaign_id)
LEFT JOIN senders AS s ON s.phone_number_id = c.phone_number_id
LEFT JOIN LATERAL (
    SELECT m AS row FROM message_statuses AS m WHERE m.message_id = l.message_id OFFSET 0
) AS ms ON true;
