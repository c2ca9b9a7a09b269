-- status_codes: the status-code mix per time bucket.
--
-- What did clients get back, and when did it change? One row per bucket and elb_status_code (the
-- status the load balancer returned, which is the target's unless the load balancer answered
-- itself); share is the fraction of the bucket's requests. Use --bucket 1d, or a window as wide
-- as one bucket, for a single mix.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   bucket  duration   bucket width: 5m, 1h or 1d, bound as seconds (default: 1h)
--
-- Columns:
--   bucket_start     timestamp  start of the bucket, UTC
--   elb_status_code  int        status the load balancer returned
--   requests         bigint     requests with this status in the bucket
--   share            double     requests / all requests in the bucket
WITH logs AS (
  SELECT
    from_unixtime(floor(to_unixtime(from_iso8601_timestamp(time)) / :bucket) * :bucket) AS bucket_start,
    elb_status_code
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
)
SELECT
  bucket_start,
  elb_status_code,
  count(*) AS requests,
  CAST(count(*) AS double) / sum(count(*)) OVER (PARTITION BY bucket_start) AS share
FROM logs
GROUP BY 1, 2
ORDER BY 1, 2
