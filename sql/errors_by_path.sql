-- errors_by_path: 5XX by normalised URL path, worst first.
--
-- Which endpoint fails? The path is request_url without scheme, host, port, query string and
-- fragment; path segments that are numbers become {id}, UUIDs {uuid} and hex strings of 16 or
-- more characters {hash}, so /pets/123 and /pets/456 are one row, /pets/{id}. Only paths with at
-- least one 5XX are listed; requests counts every request to the path in the window. The rules run
-- once per distinct request_url, not once per request (a week has millions of requests, thousands
-- of URLs).
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   limit   int        rows returned (default: 20)
--
-- Columns:
--   path        string  normalised path, e.g. /pets/{id}
--   requests    bigint  requests to the path
--   errors_5xx  bigint  responses with elb_status_code 500-599
--   elb_5xx     bigint  elb_status_code 500-599 and target_status_code not 500-599
--   target_5xx  bigint  target_status_code 500-599
--   error_rate  double  errors_5xx / requests
WITH by_url AS (
  SELECT
    request_url,
    count(*) AS requests,
    count_if(elb_status_code BETWEEN 500 AND 599) AS errors_5xx,
    count_if(elb_status_code BETWEEN 500 AND 599 AND NOT (target_status_code LIKE '5__')) AS elb_5xx,
    count_if(target_status_code LIKE '5__') AS target_5xx
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
  GROUP BY request_url
),
paths AS (
  SELECT
    -- path only: drop scheme://host:port, then the query string and fragment
    coalesce(nullif(regexp_replace(regexp_replace(coalesce(request_url, '-'),
      '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '[?#].*$', ''), ''), '/') AS raw_path,
    requests, errors_5xx, elb_5xx, target_5xx
  FROM by_url
),
normalised AS (
  SELECT
    -- each rule runs twice: a match consumes the '/' after it, so the second pass catches /1/2
    regexp_replace(regexp_replace(
    regexp_replace(regexp_replace(
    regexp_replace(regexp_replace(raw_path,
      '/[0-9]+(/|$)', '/{id}$1'), '/[0-9]+(/|$)', '/{id}$1'),
      '/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(/|$)', '/{uuid}$1'),
      '/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(/|$)', '/{uuid}$1'),
      '/[0-9A-Fa-f]{16,}(/|$)', '/{hash}$1'), '/[0-9A-Fa-f]{16,}(/|$)', '/{hash}$1') AS path,
    requests, errors_5xx, elb_5xx, target_5xx
  FROM paths
)
SELECT
  path,
  CAST(sum(requests) AS bigint) AS requests,
  CAST(sum(errors_5xx) AS bigint) AS errors_5xx,
  CAST(sum(elb_5xx) AS bigint) AS elb_5xx,
  CAST(sum(target_5xx) AS bigint) AS target_5xx,
  CAST(sum(errors_5xx) AS double) / sum(requests) AS error_rate
FROM normalised
GROUP BY 1
HAVING sum(errors_5xx) > 0
ORDER BY errors_5xx DESC, path
LIMIT :limit
