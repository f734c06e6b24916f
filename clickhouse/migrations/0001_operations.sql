-- One row per AI model call (a chat, completion, embeddings, speech-to-text,
-- image or moderation call), mapped from an OpenTelemetry span by ingest/.
--
-- Rows are never updated in place. A later fact about an operation that is
-- already stored (its context arrived on an ancestor span later, or it turned
-- out to wrap another model call) is written as a pair: a copy of the stored
-- row with sign = -1, which cancels it, and the new state with sign = +1 and
-- the next version. Every query therefore aggregates `sum(sign * x)`, which is
-- exact whether or not ClickHouse has merged the pair away yet, and never
-- needs FINAL. VersionedCollapsingMergeTree removes cancelled pairs in the
-- background to keep the table small; see README.md in this folder.
--
-- PARTITION BY month: time-range queries prune whole partitions, retention
-- drops old months cheaply, and the partition count stays small for years.
-- ORDER BY (timestamp, trace_id, span_id): every analytics query filters on a
-- time range first, so the primary index on the timestamp skips all granules
-- outside it; (trace_id, span_id) makes the key unique per span, which the
-- collapsing engine needs, and a re-sent span (same start time) is found by
-- an index lookup when the ingester checks for duplicates.
CREATE TABLE IF NOT EXISTS operations
(
    timestamp DateTime64(9, 'UTC') COMMENT 'span start time, UTC, nanoseconds as exported',
    trace_id String COMMENT 'lower-case hex, 32 characters',
    span_id String COMMENT 'lower-case hex, 16 characters',
    parent_span_id String COMMENT 'empty for a root span',
    sign Int8 DEFAULT 1 COMMENT '+1 a state of the operation, -1 cancels an earlier state',
    version UInt32 DEFAULT 1 COMMENT 'state number; a cancel row repeats the version it cancels',

    service_name LowCardinality(String),
    scope_name LowCardinality(String) COMMENT 'instrumentation scope (library) that emitted the span',
    scope_version LowCardinality(String),
    span_name String,

    capability LowCardinality(String) COMMENT 'Chat, Embedding, SpeechToText, Media, Moderation',
    operation LowCardinality(String) COMMENT 'operation name as emitted, e.g. chat, embeddings',
    provider LowCardinality(String) COMMENT 'normalised to the GenAI semantic-convention value',
    provider_raw LowCardinality(String) COMMENT 'provider as emitted',
    request_model LowCardinality(String),
    response_model LowCardinality(String),

    profile_id LowCardinality(String),
    profile_alias LowCardinality(String),
    user_id LowCardinality(String),
    user_name LowCardinality(String),
    feature_type LowCardinality(String),
    feature_id LowCardinality(String),
    entity_id String,
    entity_type LowCardinality(String),

    -- Unknown counts (absent, negative, unparseable) are stored as 0.
    input_tokens UInt64,
    output_tokens UInt64,
    total_tokens UInt64 COMMENT 'the emitter''s total when it reports one, else input + output',
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,

    duration_ns UInt64,
    succeeded Bool,
    error_type LowCardinality(String),
    error_message String,
    streaming Bool,
    conversation_id String,
    server_address LowCardinality(String),

    attributes Map(LowCardinality(String), String) COMMENT 'span attributes not mapped to a column, for the audit view',
    received_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when the ingester stored this row',

    -- The audit detail looks an operation up by span id alone.
    INDEX span_id_bloom span_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, trace_id, span_id);
