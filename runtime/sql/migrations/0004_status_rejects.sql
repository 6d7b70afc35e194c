-- Status records the projector could not fold, kept with why (docs/webhooks.md).
--
-- A record lands here when a value in it cannot be stored (the pure fold's check, e.g.
-- a timestamp beyond year 9999: `sqlstate` NULL) or when PostgreSQL refused its fold
-- (`reason` 'database_refused', `sqlstate` set). The raw key and value are kept byte for
-- byte, so a fixed projector can replay them. Unique on the Kafka position: a redelivery,
-- a replay or a rebuild records a record once, and `first_seen_at` stays the first time.
CREATE TABLE status_rejects (
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    message_key      bytea,
    raw_value        bytea,
    reason           text NOT NULL,
    sqlstate         text,
    detail           text NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_topic, source_partition, source_offset)
);
