-- Retention (`broadcast prune`, docs/design.md "Retention"): what was pruned, so that
-- nothing brings it back.
--
-- The status topic keeps every event, so a rebuild (projector/rebuild.py) would fold
-- a pruned campaign's statuses into message_statuses again: it deletes the message ids
-- listed in pruned_messages before its swap, and prune deletes statuses that the live
-- projector folded for them after they were pruned (a late read receipt).

-- One row per pruned campaign, written before its first row is deleted; completed_at is
-- set when the campaign row itself is gone (a prune stopped half way is resumed).
CREATE TABLE pruned_campaigns (
    campaign_id      uuid PRIMARY KEY,
    phone_number_id  text,
    state            text NOT NULL,
    recipients       bigint NOT NULL,
    -- The campaign's last change (its row, a recipient's row or a status event).
    terminal_at      timestamptz,
    pruned_at        timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);

-- Every message id the pruned ledger rows held, written in the transaction that
-- deletes those rows.
CREATE TABLE pruned_messages (
    message_id   text PRIMARY KEY,
    campaign_id  uuid NOT NULL
);
