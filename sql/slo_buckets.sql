-- slo_buckets: per-bucket counts for SLOs: 5XX, 460, who produced the 5XX, and latency-SLI counts.
--
-- The input of `albstats report`'s availability and latency SLOs, error budget, burn rates and
-- incidents (albstats/slo.py). A request is bad when elb_status_code is 500-599 (4XX are the
-- client's); status_460 (the client closed the connection, usually on a slow target) is counted
-- apart so the report can treat it as bad with --count-460. latency_requests counts requests whose
-- three processing times are all valid (none is -1); latency_good those among them whose sum is
-- strictly below latency_threshold seconds. Buckets are on `time`, aligned to the Unix epoch in
-- UTC; buckets without requests are absent.
--
-- Parameters:
--   since              timestamp  start of the window, UTC, inclusive (default: all data)
--   until              timestamp  end of the window, UTC, exclusive (default: all data)
--   bucket             duration   bucket width: 5m, 1h or 1d, bound as seconds (default: 5m)
--   latency_threshold  double     latency SLI threshold on the total time, seconds (default: 1.0)
--
-- Columns:
--   bucket_start      timestamp  start of the bucket, UTC
--   requests          bigint     requests answered in the bucket
--   errors_5xx        bigint     elb_status_code 500-599
--   status_460        bigint     elb_status_code 460 (client closed the connection)
--   elb_5xx           bigint     elb_status_code 500-599 and target_status_code not 500-599
--   target_5xx        bigint     target_status_code 500-599
--   latency_requests  bigint     requests with none of the three processing times -1
--   latency_good      bigint     of those, total time below latency_threshold
WITH logs AS (
  SELECT
    from_iso8601_timestamp(time) AS ts,
    elb_status_code,
    target_status_code LIKE '5__' AS is_target_5xx,
    request_processing_time >= 0 AND target_processing_time >= 0 AND response_processing_time >= 0
      AS dispatched,
    request_processing_time + target_processing_time + response_processing_time AS total_time
  FROM alb_logs
)
SELECT
  from_unixtime(floor(to_unixtime(ts) / :bucket) * :bucket) AS bucket_start,
  count(*) AS requests,
  count_if(elb_status_code BETWEEN 500 AND 599) AS errors_5xx,
  count_if(elb_status_code = 460) AS status_460,
  count_if(elb_status_code BETWEEN 500 AND 599 AND NOT is_target_5xx) AS elb_5xx,
  count_if(is_target_5xx) AS target_5xx,
  count_if(dispatched) AS latency_requests,
  count_if(dispatched AND total_time < :latency_threshold) AS latency_good
FROM logs
WHERE ts >= from_iso8601_timestamp(:since)
  AND ts < from_iso8601_timestamp(:until)
GROUP BY 1
ORDER BY 1
