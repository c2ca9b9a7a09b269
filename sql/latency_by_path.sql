-- latency_by_path: the slowest normalised URL paths by total time.
--
-- Which endpoint is slow? Paths are normalised as in errors_by_path (/pets/123 -> /pets/{id}).
-- Times are total_time, the sum of the three processing times, for requests where none is -1;
-- paths with fewer than min_requests such requests are left out so one odd request does not top
-- the list. Sorted by p99. Percentiles are exact on both engines, with linear interpolation, from a
-- histogram of the millisecond values. The path rules run once per distinct request_url.
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
  -- DISTINCT on the path too: it makes the rules run on the few URLs, before they are looked up
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
histogram AS (
  -- exact percentiles from a histogram: times are in milliseconds, so a path has thousands of
  -- distinct values at most, and memory stays flat however many requests.
  -- The path is looked up with a scalar subquery, not a join: DuckDB cannot tell that paths is
  -- small and hashed the requests instead (10M lines: 4.4 CPU s and 400 MB spilled, now 1.7 s)
  SELECT (SELECT max(p.path) FROM paths AS p WHERE p.url = l.url) AS path, l.total_time AS value, count(*) AS n
  FROM logs AS l
  GROUP BY 1, 2
),
ranked AS (
  -- upto: requests with a value up to this one; last: the 0-based rank of the largest value
  SELECT
    path,
    value,
    sum(n) OVER (PARTITION BY path ORDER BY value ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto,
    CAST(sum(n) OVER (PARTITION BY path) AS bigint) - 1 AS last
  FROM histogram
),
bounds AS (
  -- percentile q lies between the values of rank floor(last * q) and ceil(last * q)
  SELECT
    path,
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
  GROUP BY 1
  HAVING max(last) + 1 >= :min_requests
),
percentiles AS (
  SELECT
    path,
    last + 1 AS requests,
    -- linear interpolation between the two ranks, as pandas' and DuckDB's quantiles do
    lo50 + (hi50 - lo50) * CAST(last * 0.50 - floor(last * 0.50) AS double) AS p50,
    lo90 + (hi90 - lo90) * CAST(last * 0.90 - floor(last * 0.90) AS double) AS p90,
    lo95 + (hi95 - lo95) * CAST(last * 0.95 - floor(last * 0.95) AS double) AS p95,
    lo99 + (hi99 - lo99) * CAST(last * 0.99 - floor(last * 0.99) AS double) AS p99,
    max
  FROM bounds
)
SELECT path, requests, p50, p90, p95, p99, max
FROM percentiles
ORDER BY p99 DESC, path
LIMIT :limit
