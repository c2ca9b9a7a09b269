-- slowest_requests: the slowest requests, with their trace ids to look up in the targets' logs.
--
-- Which requests took longest, and where did the time go? total_time is the sum of the three
-- processing times; requests where any of them is -1 (not dispatched, or the connection closed
-- before a response) have no total and are not ranked. trace_id is the X-Amzn-Trace-Id the load
-- balancer added, which the target saw too. path_prefix keeps requests whose URL path (without
-- scheme, host and query string) starts with it.
--
-- Parameters:
--   since        timestamp  start of the window, UTC, inclusive (default: all data)
--   until        timestamp  end of the window, UTC, exclusive (default: all data)
--   limit        int        rows returned (default: 20)
--   path_prefix  string     only paths starting with this text (default: empty)
--
-- Columns:
--   time                      timestamp  when the load balancer answered, UTC
--   total_time                double     sum of the three processing times, seconds
--   request_processing_time   double     seconds from receipt to dispatch
--   target_processing_time    double     seconds in the target
--   response_processing_time  double     seconds sending the response
--   elb_status_code           int        status the load balancer returned
--   target_status_code        string     status the target returned, '-' if none
--   client_ip                 string     client IP
--   target                    string     ip:port of the target
--   request_verb              string     HTTP method
--   request_url               string     URL as sent
--   trace_id                  string     X-Amzn-Trace-Id
WITH logs AS (
  SELECT
    time, request_processing_time, target_processing_time, response_processing_time, elb_status_code,
    target_status_code, client_ip, target_ip, target_port, request_verb, request_url, trace_id,
    coalesce(nullif(regexp_replace(regexp_replace(coalesce(request_url, '-'),
      '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '[?#].*$', ''), ''), '/') AS path
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
    AND request_processing_time >= 0
    AND target_processing_time >= 0
    AND response_processing_time >= 0
)
SELECT
  from_iso8601_timestamp(time) AS time,
  request_processing_time + target_processing_time + response_processing_time AS total_time,
  request_processing_time,
  target_processing_time,
  response_processing_time,
  elb_status_code,
  target_status_code,
  client_ip,
  CASE
    WHEN target_ip IS NULL OR target_ip = '' THEN '-'
    WHEN strpos(target_ip, ':') > 0 THEN concat('[', target_ip, ']:', coalesce(CAST(target_port AS varchar), ''))
    ELSE concat(target_ip, ':', coalesce(CAST(target_port AS varchar), ''))
  END AS target,
  request_verb,
  request_url,
  trace_id
FROM logs
WHERE :path_prefix = '' OR starts_with(path, :path_prefix)  -- the empty prefix costs no path work
ORDER BY total_time DESC, time, trace_id
LIMIT :limit
