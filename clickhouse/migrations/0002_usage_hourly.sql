-- Hourly pre-aggregates for the analytics API, one row per
-- (dimension, hour, key, name). `dimension` is data, not a table name:
--   'all'      key '' - the summary and the time series
--   'provider' key = provider
--   'model'    key = request model, else response model
--   'profile'  key = profile id, name = profile alias
--   'user'     key = user id,    name = user name
-- app/api's dimension registry lists the same five, with the same key and
-- name expressions for the raw rows that the queries read at range edges.
--
-- Exactness: the materialized view sums `sign * x` of every inserted block.
-- The ingester writes each span once (duplicates are dropped before insert)
-- and corrects a stored operation with a cancel row (sign -1) plus its new
-- state, so the rollup receives exactly the same +1/-1 rows as the raw table
-- and both always agree; no FINAL, no refresh job, no gap.
-- SummingMergeTree adds the rows of one key together in the background;
-- queries still GROUP BY because unmerged parts may hold several rows.
CREATE TABLE IF NOT EXISTS usage_hourly
(
    dimension LowCardinality(String),
    hour DateTime('UTC'),
    key String,
    name String,
    requests Int64,
    input_tokens Int64,
    output_tokens Int64,
    total_tokens Int64,
    successes Int64,
    failures Int64,
    duration_ns Int64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (dimension, hour, key, name);

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS
SELECT
    tupleElement(d, 1) AS dimension,
    toStartOfHour(timestamp) AS hour,
    tupleElement(d, 2) AS key,
    tupleElement(d, 3) AS name,
    sum(sign) AS requests,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * total_tokens) AS total_tokens,
    sum(sign * succeeded) AS successes,
    sum(sign * (1 - succeeded)) AS failures,
    sum(sign * duration_ns) AS duration_ns
FROM operations
ARRAY JOIN [
    ('all', '', ''),
    ('provider', toString(provider), ''),
    ('model', if(request_model != '', toString(request_model), toString(response_model)), ''),
    ('profile', toString(profile_id), toString(profile_alias)),
    ('user', toString(user_id), toString(user_name))
] AS d
GROUP BY dimension, hour, key, name;
