-- Every action taken in the operator console (who, what, when, and what came of it),
-- shown on the campaign's page. Append-only: the console never updates or deletes it.
CREATE TABLE console_actions (
    action_id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    role text NOT NULL,
    action text NOT NULL,
    campaign_id uuid,
    detail text,
    outcome text NOT NULL
);
CREATE INDEX console_actions_campaign ON console_actions (campaign_id, at DESC);

-- The console's campaign list, newest first, a page at a time.
CREATE INDEX campaigns_created ON campaigns (created_at DESC, campaign_id);
-- The console's recipient search: one phone across every campaign. The ledger's key
-- starts with the campaign, so without this a search reads the whole ledger.
CREATE INDEX ledger_phone ON ledger (phone);
