-- The reconciler's backlog of asynchronous failures, read from a cursor (docs/dispatch.md,
-- "Late failures"), so that a pass costs what is new, not every failure ever reported.
--
-- status_failures: one row per message that a status event reported failed, appended by
-- the projector in the transaction of the fold that brought the failure, under a
-- transaction advisory lock taken just before the insert: seq order is then commit order,
-- and a reader that sees seq n has already seen every committed seq below it. Unique on
-- message_id and written ON CONFLICT DO NOTHING, so a redelivery, a replay or a rebuild
-- adds nothing. Not part of the projection: whether the failure still stands (no
-- delivered or read since) is read from message_statuses when the reconciler looks.
CREATE TABLE status_failures (
    seq          bigserial PRIMARY KEY,
    message_id   text NOT NULL UNIQUE,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- How far the reconciler has read status_failures (one row, moved only forward). Every
-- entry at or below it was acted on, found finished, or is in failure_waits.
CREATE TABLE failure_cursor (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Entries read but not finished: a failure in its recheck grace period, one the API does
-- not call final yet, or one whose message id the ledger does not hold (yet). Each is
-- looked at again from check_at; the set stays as small as the failures in flight.
CREATE TABLE failure_waits (
    seq       bigint PRIMARY KEY REFERENCES status_failures ON DELETE CASCADE,
    check_at  timestamptz NOT NULL
);
CREATE INDEX failure_waits_due ON failure_waits (check_at);

-- Backfill: every failure the reconciler of 0005 would still have looked at (failed, not
-- delivered or read since, not finished in the ledger). recorded_at is the failure's own
-- time, so the wait for a message id the ledger never learns is not restarted by the upgrade.
INSERT INTO status_failures (message_id, recorded_at)
SELECT ms.message_id, LEAST(ms.failed_at, now())
FROM message_statuses AS ms
WHERE ms.failed_at IS NOT NULL AND ms.delivered_at IS NULL AND ms.read_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM ledger AS l
                  WHERE l.message_id = ms.message_id
                    AND (l.status <> 'queued' OR l.failure_checked_at IS NOT NULL))
ORDER BY ms.failed_at, ms.message_id;

INSERT INTO failure_cursor (seq) VALUES (0);
