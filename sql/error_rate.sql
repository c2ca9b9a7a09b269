-- error_rate: requests, 5XX errors and success rate per time bucket.
--
-- Is the service answering, and who produced the 5XX: the load balancer or the targets?
-- errors_5xx is every response with elb_status_code 500-599 (what clients saw). elb_5xx are the
-- ones the load balancer generated itself (the target sent no 5XX: e.g. 502/503/504 with
-- target_status_code '-'); target_5xx are 5XX the target returned (target_status_code 500-599).
-- Buckets are on `time` (when the load balancer answered), aligned to the Unix epoch in UTC;
-- buckets without requests are absent.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   bucket  duration   bucket width: 5m, 1h or 1d, bound as seconds (default: 1h)
--
-- Columns:
--   bucket_start  timestamp  start of the bucket, UTC
--   requests      bigint     requests answered in the bucket
--   errors_5xx    bigint     responses with elb_status_code 500-599
--   elb_5xx       bigint     elb_status_code 500-599 and target_status_code not 500-599
--   target_5xx    bigint     target_status_code 500-599
--   success_rate  double     1 - errors_5xx / requests
WITH logs AS (
  SELECT
    from_iso8601_timestamp(time) AS ts,
    elb_status_code BETWEEN 500 AND 599 AS is_5xx,
    target_status_code LIKE '5__' AS is_target_5xx
  FROM alb_logs
)
SELECT
  from_unixtime(floor(to_unixtime(ts) / :bucket) * :bucket) AS bucket_start,
  count(*) AS requests,
  count_if(is_5xx) AS errors_5xx,
  count_if(is_5xx AND NOT is_target_5xx) AS elb_5xx,
  count_if(is_target_5xx) AS target_5xx,
  1 - CAST(count_if(is_5xx) AS double) / count(*) AS success_rate
FROM logs
WHERE ts >= from_iso8601_timestamp(:since)
  AND ts < from_iso8601_timestamp(:until)
GROUP BY 1
ORDER BY 1
