-- latency_percentiles: p50/p90/p95/p99/max of each processing time per time bucket.
--
-- How slow is the service, and where is the time spent: before dispatch (request), in the
-- target (target), or sending the response (response)? total_time is the sum of the three, only
-- for requests where none is -1. A -1 (the request was not dispatched, or the target closed the
-- connection) is excluded, so requests counts the rows with a valid value. Athena's
-- approx_percentile is approximate (about 1 % rank error); the local engine computes exact
-- percentiles with linear interpolation. Times are in seconds.
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
quantiles AS (
  SELECT
    bucket_start,
    metric,
    count(*) AS requests,
    -- one array of four: one sort of the values instead of four
    approx_percentile(value, ARRAY[0.50, 0.90, 0.95, 0.99]) AS q,
    max(value) AS max
  FROM metric_values
  WHERE value >= 0
  GROUP BY 1, 2
)
SELECT
  bucket_start,
  metric,
  requests,
  q[1] AS p50,
  q[2] AS p90,
  q[3] AS p95,
  q[4] AS p99,
  max
FROM quantiles
ORDER BY 1, 2
