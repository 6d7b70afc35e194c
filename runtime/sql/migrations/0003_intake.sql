-- Intake's own memory.
--
-- Control events (pause, resume, cancel) that arrive before their campaign's first
-- chunk: kept here, folded into the campaign's initial state in arrival order when
-- that chunk arrives, then deleted. Unique on the Kafka position so a redelivered
-- event is remembered once.
CREATE TABLE intake_early_controls (
    seq              bigserial PRIMARY KEY,
    campaign_id      uuid NOT NULL,
    command          text NOT NULL CHECK (command IN ('pause', 'resume', 'cancel')),
    reason           text,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX intake_early_controls_campaign ON intake_early_controls (campaign_id, seq);

-- sha256 of a chunk's canonical JSON: the same index sent again with other content is
-- a conflict (dead-lettered), not a redelivery.
ALTER TABLE campaign_chunks ADD COLUMN content_sha256 text;
