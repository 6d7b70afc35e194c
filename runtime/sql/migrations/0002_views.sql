-- The read model operators query. Status precedence of a message: read > delivered >
-- failed > sent. A delivered or read that follows a failed wins (multi-device), and the
-- failure's code stays visible in error_code for the record.

CREATE FUNCTION message_status_of(ms message_statuses) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN ms.read_at IS NOT NULL THEN 'read'
        WHEN ms.delivered_at IS NOT NULL THEN 'delivered'
        WHEN ms.failed_at IS NOT NULL THEN 'failed'
        WHEN ms.sent_at IS NOT NULL THEN 'sent'
    END
$$;

CREATE VIEW campaign_recipient_status AS
SELECT
    l.campaign_id,
    l.phone,
    -- Once a message id is known, the webhook fold says where the message is; a
    -- failure the dispatcher recorded stays visible until a later status overrides it.
    CASE
        WHEN l.status IN ('queued', 'failed') AND l.message_id IS NOT NULL
            THEN COALESCE(message_status_of(ms), l.status)
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
    COALESCE(ms.error_code, l.error_code) AS error_code,
    COALESCE(ms.error_message, l.error_message) AS error_message,
    GREATEST(l.updated_at, ms.updated_at) AS updated_at
FROM ledger AS l
JOIN campaigns AS c USING (campaign_id)
LEFT JOIN senders AS s ON s.phone_number_id = c.phone_number_id
LEFT JOIN message_statuses AS ms ON ms.message_id = l.message_id;

CREATE VIEW campaign_progress AS
SELECT
    campaign_id,
    status,
    count(*) AS count,
    round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY campaign_id), 2) AS pct
FROM campaign_recipient_status
GROUP BY campaign_id, status;

-- One row per campaign: its state and whether it is terminal (nothing pending, queued or sent).
-- A stopped campaign (template paused, sender stopped) is not terminal: its pending
-- recipients wait for an operator to resume it.
CREATE VIEW campaign_overview AS
SELECT
    c.campaign_id,
    c.state,
    c.state_reason,
    c.phone_number_id,
    c.template_name,
    c.chunk_count,
    (SELECT count(*) FROM campaign_chunks AS k WHERE k.campaign_id = c.campaign_id) AS chunks_received,
    count(s.phone) AS recipients,
    count(s.phone) FILTER (WHERE s.status IN ('pending', 'queued', 'sent')) AS in_progress,
    count(s.phone) FILTER (WHERE s.status IN ('pending', 'queued', 'sent')) = 0 AS terminal,
    c.created_at,
    max(s.updated_at) AS updated_at
FROM campaigns AS c
LEFT JOIN campaign_recipient_status AS s USING (campaign_id)
GROUP BY c.campaign_id;
