-- Daily pre-aggregates: usage_hourly rolled up by day, so that a 30-day
-- breakdown by user reads about 30 rows per active user instead of 720.
-- Queries take whole days from here, the whole hours around them from
-- usage_hourly and the partial hours at the range edges from operations.
--
-- The view reads the rows the hourly view writes (ClickHouse cascades views),
-- so the dimensions are defined once, in 0002, and the daily rows get the
-- same +1/-1 corrections as the hourly ones: exact at every moment.
CREATE TABLE IF NOT EXISTS usage_daily
(
    dimension LowCardinality(String),
    day DateTime('UTC'),
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
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, day, key, name);

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv TO usage_daily AS
SELECT
    dimension,
    toStartOfDay(hour) AS day,
    key,
    name,
    sum(requests) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    sum(successes) AS successes,
    sum(failures) AS failures,
    sum(duration_ns) AS duration_ns
FROM usage_hourly
GROUP BY dimension, day, key, name;

-- What was stored before the view existed. Migrations run before ingestion
-- starts (at start-up, and as compose's `migrate` step), so nothing arrives in
-- between; the guard makes a re-run after an interrupted migration harmless.
INSERT INTO usage_daily
SELECT
    dimension, toStartOfDay(hour) AS day, key, name,
    sum(requests), sum(input_tokens), sum(output_tokens), sum(total_tokens),
    sum(successes), sum(failures), sum(duration_ns)
FROM usage_hourly
WHERE (SELECT count() FROM usage_daily) = 0
GROUP BY dimension, day, key, name;
