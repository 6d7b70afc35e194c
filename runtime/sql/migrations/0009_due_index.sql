-- due_rows takes a campaign's next due recipients in (next_attempt_at, phone) order, a
-- batch at a time. ledger_pending held (campaign_id, next_attempt_at) only, so every
-- batch sorted all of the campaign's due rows to keep 500 of them: a cost that grew
-- with the campaign (~45 ms a batch at 100,000 pending). With the phone in the key,
-- the batch is the first rows of two index ranges (due retries, then fresh rows by
-- phone; queries.sql), whatever the campaign's size. The new index serves every
-- statement the old one did: its leading columns are the same.
CREATE INDEX ledger_due ON ledger (campaign_id, next_attempt_at, phone) WHERE status = 'pending';
DROP INDEX ledger_pending;
