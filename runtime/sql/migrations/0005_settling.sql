-- What the dispatcher learns by asking the API about a message (GET /v1/{number}/messages/{id}).
--
-- failure_checked_at: a message reported failed that the API, asked after a grace
-- period, says was delivered after all (multi-device): it is not sent again, and the
-- reconciler does not look at it again.
ALTER TABLE ledger ADD COLUMN failure_checked_at timestamptz;

-- Statuses of one sender's messages to one recipient: how a send whose answer was
-- lost finds the message it became, once its idempotency key has expired.
CREATE INDEX message_statuses_recipient ON message_statuses (phone_number_id, recipient_id);
