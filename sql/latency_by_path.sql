-- latency_by_path: the slowest normalised URL paths by total time.
--
-- Which endpoint is slow? Paths are normalised as in errors_by_path (/pets/123 -> /pets/{id}).
-- Times are total_time, the sum of the three processing times, for requests where none is -1;
-- paths with fewer than min_requests such requests are left out so one odd request does not top
-- the list. Sorted by p99. Athena's approx_percentile is approximate; the local engine is exact. The
-- path rules run once per distinct request_url, not once per request.
--
-- Parameters:
--   since         timestamp  start of the window, UTC, inclusive (default: all data)
--   until         timestamp  end of the window, UTC, exclusive (default: all data)
--   limit         int        rows returned (default: 20)
--   min_requests  int        least requests a path needs to be listed (default: 10)
--
-- Columns:
--   path      string  normalised path, e.g. /pets/{id}
--   requests  bigint  requests with a valid total time
--   p50       double  median total time, seconds
--   p90       double  90th percentile, seconds
--   p95       double  95th percentile, seconds
--   p99       double  99th percentile, seconds
--   max       double  slowest, seconds
WITH urls AS (
  SELECT DISTINCT coalesce(request_url, '-') AS url
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
),
paths AS (
  -- DISTINCT on the path too: it makes the rules run on the few URLs, before the join
  SELECT DISTINCT
    url,
    -- the same rules as errors_by_path, each twice (a match consumes the '/' after it)
    regexp_replace(regexp_replace(
    regexp_replace(regexp_replace(
    regexp_replace(regexp_replace(
      -- path only: drop scheme://host:port, then the query string and fragment
      coalesce(nullif(regexp_replace(regexp_replace(url,
        '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '[?#].*$', ''), ''), '/'),
      '/[0-9]+(/|$)', '/{id}$1'), '/[0-9]+(/|$)', '/{id}$1'),
      '/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(/|$)', '/{uuid}$1'),
      '/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(/|$)', '/{uuid}$1'),
      '/[0-9A-Fa-f]{16,}(/|$)', '/{hash}$1'), '/[0-9A-Fa-f]{16,}(/|$)', '/{hash}$1') AS path
  FROM urls
),
logs AS (
  SELECT
    coalesce(request_url, '-') AS url,
    request_processing_time + target_processing_time + response_processing_time AS total_time
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
    AND request_processing_time >= 0
    AND target_processing_time >= 0
    AND response_processing_time >= 0
),
quantiles AS (
  SELECT
    p.path,
    count(*) AS requests,
    -- one array of four: one sort of the values instead of four
    approx_percentile(l.total_time, ARRAY[0.50, 0.90, 0.95, 0.99]) AS q,
    max(l.total_time) AS max
  FROM logs AS l
  JOIN paths AS p ON l.url = p.url
  GROUP BY 1
  HAVING count(*) >= :min_requests
)
SELECT
  path,
  requests,
  q[1] AS p50,
  q[2] AS p90,
  q[3] AS p95,
  q[4] AS p99,
  max
FROM quantiles
ORDER BY p99 DESC, path
LIMIT :limit
