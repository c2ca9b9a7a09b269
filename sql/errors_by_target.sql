-- errors_by_target: 5XX by target (ip:port) and target group, worst first.
--
-- Which instance, container or IP behind the load balancer fails? Requests that reached no target
-- (the load balancer answered itself, e.g. 503 with no healthy target) are grouped as target '-'.
-- IPv6 targets are written [ip]:port. Only targets with at least one 5XX are listed;
-- requests counts every request the target got in the window, so error_rate is its failure share.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   limit   int        rows returned (default: 20)
--
-- Columns:
--   target            string  ip:port of the target, '-' when no target answered
--   target_group_arn  string  target group ARN
--   requests          bigint  requests sent to this target (group)
--   errors_5xx        bigint  responses with elb_status_code 500-599
--   elb_5xx           bigint  elb_status_code 500-599 and target_status_code not 500-599
--   target_5xx        bigint  target_status_code 500-599
--   error_rate        double  errors_5xx / requests
WITH logs AS (
  SELECT
    CASE
      WHEN target_ip IS NULL OR target_ip = '' THEN '-'
      WHEN strpos(target_ip, ':') > 0 THEN concat('[', target_ip, ']:', coalesce(CAST(target_port AS varchar), ''))
      ELSE concat(target_ip, ':', coalesce(CAST(target_port AS varchar), ''))
    END AS target,
    target_group_arn,
    elb_status_code BETWEEN 500 AND 599 AS is_5xx,
    target_status_code LIKE '5__' AS is_target_5xx
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
)
SELECT
  target,
  target_group_arn,
  count(*) AS requests,
  count_if(is_5xx) AS errors_5xx,
  count_if(is_5xx AND NOT is_target_5xx) AS elb_5xx,
  count_if(is_target_5xx) AS target_5xx,
  CAST(count_if(is_5xx) AS double) / count(*) AS error_rate
FROM logs
GROUP BY 1, 2
HAVING count_if(is_5xx) > 0
ORDER BY errors_5xx DESC, target, target_group_arn
LIMIT :limit
