-- service_buckets: per-bucket SLO counts for one service, selected by host, path, target group, listener.
--
-- The input of per-service SLOs (`albstats report --slo-file`, `albstats check`): the counts of
-- slo_buckets, restricted to the requests of one service. Each selection parameter left empty
-- matches every request; the ones given must all match. host is the host of request_url (compared
-- lower-case), path its path (before any ? or #); path_prefix must start the path, path_regex must
-- match it somewhere (use the regex syntax Athena's Java and DuckDB's RE2 share). target_group is a
-- target group's name (the NAME in targetgroup/NAME/id) or its full ARN. listener_port is the port
-- in request_url (the listener's port); listener_protocol is http (types http, ws) or https (https,
-- h2, grpcs, wss). A request is bad when elb_status_code is 500-599 (status_460 apart, as in
-- slo_buckets); latency_good counts dispatched requests faster than latency_threshold seconds.
--
-- Parameters:
--   since              timestamp  start of the window, UTC, inclusive (default: all data)
--   until              timestamp  end of the window, UTC, exclusive (default: all data)
--   bucket             duration   bucket width: 5m, 1h or 1d, bound as seconds (default: 5m)
--   latency_threshold  double     latency SLI threshold on the total time, seconds (default: 1.0)
--   host               string     host of request_url, lower-case (default: empty)
--   path_prefix        string     the path starts with this (default: empty)
--   path_regex         string     the path matches this regular expression (default: empty)
--   target_group       string     target group name or ARN (default: empty)
--   listener_port      string     port of request_url (default: empty)
--   listener_protocol  string     http or https (default: empty)
--
-- Columns:
--   bucket_start      timestamp  start of the bucket, UTC
--   requests          bigint     the service's requests answered in the bucket
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
    request_processing_time + target_processing_time + response_processing_time AS total_time,
    lower(coalesce(regexp_extract(request_url, '^[A-Za-z0-9+.-]+://([^/:?#]+)', 1), '')) AS host,
    coalesce(regexp_extract(request_url, '^[A-Za-z0-9+.-]+://[^/?#]*([^?#]*)', 1), '') AS path,
    coalesce(regexp_extract(request_url, '^[A-Za-z0-9+.-]+://[^/?#]*:([0-9]+)', 1), '') AS port,
    CASE WHEN type IN ('http', 'ws') THEN 'http' ELSE 'https' END AS protocol,
    coalesce(target_group_arn, '') AS tg_arn,
    coalesce(regexp_extract(target_group_arn, 'targetgroup/([^/]+)/', 1), '') AS tg_name
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
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
WHERE (:host = '' OR host = :host)
  AND (:path_prefix = '' OR starts_with(path, :path_prefix))
  AND (:path_regex = '' OR regexp_like(path, :path_regex))
  AND (:target_group = '' OR tg_arn = :target_group OR tg_name = :target_group)
  AND (:listener_port = '' OR port = :listener_port)
  AND (:listener_protocol = '' OR protocol = :listener_protocol)
GROUP BY 1
ORDER BY 1
