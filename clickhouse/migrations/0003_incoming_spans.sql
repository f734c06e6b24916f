-- Staging for new operations: the ingester inserts one row per model-call
-- span (raw OTLP bytes through FORMAT Protobuf, or OTLP/JSON through
-- FORMAT JSONEachRow; see ../incoming_span.proto) and the view
-- incoming_spans_mv maps each row into `operations`. The Null engine keeps
-- nothing: the rows exist only on their way through the view.
--
-- Why ClickHouse maps: per-attribute work (alias look-ups, numbers sent as
-- strings, rendering the remaining attributes) costs Python about a
-- microsecond per attribute; vectorised in ClickHouse it is cheap and runs
-- outside the GIL, while Python keeps what needs a whole trace (duplicates,
-- ancestor context, nested calls) and sends its decision along.
--
-- Nullable scalar members tell which member of an AnyValue was set.
-- The mapping view itself is generated from ingest/conventions.py by
-- clickhouse/mapping.py and kept current as a repeatable migration.
CREATE TABLE IF NOT EXISTS incoming_spans
(
    resource Tuple(
        attributes Array(Tuple(
            key String,
            value Tuple(
                stringValue Nullable(String), boolValue Nullable(Bool), intValue Nullable(Int64), doubleValue Nullable(Float64),
                arrayValue Tuple(values Array(Tuple(stringValue Nullable(String), boolValue Nullable(Bool), intValue Nullable(Int64), doubleValue Nullable(Float64)))),
                kvlistValue Tuple(values Array(Tuple(key String, value Tuple(stringValue Nullable(String), boolValue Nullable(Bool), intValue Nullable(Int64), doubleValue Nullable(Float64))))),
                bytesValue Nullable(String))))),
    scope Tuple(name String, version String),
    span Tuple(
        name String,
        attributes Array(Tuple(
            key String,
            value Tuple(
                stringValue Nullable(String), boolValue Nullable(Bool), intValue Nullable(Int64), doubleValue Nullable(Float64),
                arrayValue Tuple(values Array(Tuple(stringValue Nullable(String), boolValue Nullable(Bool), intValue Nullable(Int64), doubleValue Nullable(Float64)))),
                kvlistValue Tuple(values Array(Tuple(key String, value Tuple(stringValue Nullable(String), boolValue Nullable(Bool), intValue Nullable(Int64), doubleValue Nullable(Float64))))),
                bytesValue Nullable(String)))),
        status Tuple(message String, code Int32)),
    decision Tuple(
        traceId String, spanId String, parentSpanId String,
        startTimeUnixNano UInt64, endTimeUnixNano UInt64, version UInt32,
        capability String, operation String,
        profileId String, profileAlias String, userId String, userName String,
        featureType String, featureId String, entityId String, entityType String,
        exceptionType String, exceptionMessage String)
)
ENGINE = Null;
