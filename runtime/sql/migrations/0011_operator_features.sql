-- Issue 13's campaign options and the opt-in each recipient's send relies on.
-- priority: 'transactional' campaigns are sent before 'bulk' on a shared number and
-- organisation budget. quiet_hours / quality_guard: the request's objects as sent
-- (NULL when absent), read by the dispatcher on every claim.
ALTER TABLE campaigns
    ADD COLUMN priority text NOT NULL DEFAULT 'bulk'
        CHECK (priority IN ('transactional', 'bulk')),
    ADD COLUMN quiet_hours jsonb,
    ADD COLUMN quality_guard jsonb;

-- Where the consent came from (the request's `opt_in_source`), beside opted_in_at.
ALTER TABLE ledger ADD COLUMN opt_in_source text;
