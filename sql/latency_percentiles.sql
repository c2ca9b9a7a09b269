-- latency_percentiles: p50/p90/p95/p99/max of each processing time per time bucket.
--
-- How slow is the service, and where is the time spent: before dispatch (request), in the
-- target (target), or sending the response (response)? total_time is the sum of the three, only
-- for requests where none is -1. A -1 (the request was not dispatched, or the target closed the
-- connection) is excluded, so requests counts the rows with a valid value. Percentiles are exact
-- on both engines, with linear interpolation, from a histogram of the millisecond values (memory
-- grows with distinct values, not requests). Times are in seconds.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   bucket  duration   bucket width: 5m, 1h or 1d, bound as seconds (default: 1h)
--
-- Columns:
--   bucket_start  timestamp  start of the bucket, UTC
--   metric        string     request_processing_time, target_processing_time,
--                            response_processing_time or total_time
--   requests      bigint     requests with a valid (not -1) value
--   p50           double     median, seconds
--   p90           double     90th percentile, seconds
--   p95           double     95th percentile, seconds
--   p99           double     99th percentile, seconds
--   max           double     slowest, seconds
WITH logs AS (
  SELECT
    from_unixtime(floor(to_unixtime(from_iso8601_timestamp(time)) / :bucket) * :bucket) AS bucket_start,
    request_processing_time,
    target_processing_time,
    response_processing_time
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
),
metric_values AS (
  SELECT
    bucket_start,
    m.metric,
    CASE m.metric
      WHEN 'request_processing_time' THEN request_processing_time
      WHEN 'target_processing_time' THEN target_processing_time
      WHEN 'response_processing_time' THEN response_processing_time
      WHEN 'total_time' THEN
        CASE WHEN request_processing_time >= 0 AND target_processing_time >= 0 AND response_processing_time >= 0
          THEN request_processing_time + target_processing_time + response_processing_time END
    END AS value
  FROM logs
  CROSS JOIN (
    VALUES 'request_processing_time', 'target_processing_time', 'response_processing_time', 'total_time'
  ) AS m (metric)
),
histogram AS (
  -- exact percentiles from a histogram: times are in milliseconds, so a bucket of requests has
  -- thousands of distinct values at most, and memory stays flat however many requests
  SELECT bucket_start, metric, value, count(*) AS n
  FROM metric_values
  WHERE value >= 0
  GROUP BY 1, 2, 3
),
ranked AS (
  -- upto: requests with a value up to this one; last: the 0-based rank of the largest value
  SELECT
    bucket_start,
    metric,
    value,
    sum(n) OVER (
      PARTITION BY bucket_start, metric ORDER BY value ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS upto,
    CAST(sum(n) OVER (PARTITION BY bucket_start, metric) AS bigint) - 1 AS last
  FROM histogram
),
bounds AS (
  -- percentile q lies between the values of rank floor(last * q) and ceil(last * q)
  SELECT
    bucket_start,
    metric,
    max(last) AS last,
    min(CASE WHEN upto > floor(last * 0.50) THEN value END) AS lo50,
    min(CASE WHEN upto > ceil(last * 0.50) THEN value END) AS hi50,
    min(CASE WHEN upto > floor(last * 0.90) THEN value END) AS lo90,
    min(CASE WHEN upto > ceil(last * 0.90) THEN value END) AS hi90,
    min(CASE WHEN upto > floor(last * 0.95) THEN value END) AS lo95,
    min(CASE WHEN upto > ceil(last * 0.95) THEN value END) AS hi95,
    min(CASE WHEN upto > floor(last * 0.99) THEN value END) AS lo99,
    min(CASE WHEN upto > ceil(last * 0.99) THEN value END) AS hi99,
    max(value) AS max
  FROM ranked
  GROUP BY 1, 2
)
SELECT
  bucket_start,
  metric,
  last + 1 AS requests,
  -- linear interpolation between the two ranks, as pandas' and DuckDB's quantiles do
  lo50 + (hi50 - lo50) * CAST(last * 0.50 - floor(last * 0.50) AS double) AS p50,
  lo90 + (hi90 - lo90) * CAST(last * 0.90 - floor(last * 0.90) AS double) AS p90,
  lo95 + (hi95 - lo95) * CAST(last * 0.95 - floor(last * 0.95) AS double) AS p95,
  lo99 + (hi99 - lo99) * CAST(last * 0.99 - floor(last * 0.99) AS double) AS p99,
  max
FROM bounds
ORDER BY 1, 2
