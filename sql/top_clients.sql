-- top_clients: the clients that sent the most requests, with their 4XX and 5XX.
--
-- Who is calling, and is one client causing the load or collecting errors (a scanner, a broken
-- retry loop)? client_ip is the address the load balancer saw: a proxy or NAT in front of
-- several clients counts as one.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   limit   int        rows returned (default: 20)
--
-- Columns:
--   client_ip       string     client IP
--   requests        bigint     requests from the client
--   errors_4xx      bigint     elb_status_code 400-499
--   errors_5xx      bigint     elb_status_code 500-599
--   received_bytes  bigint     request bytes from the client
--   sent_bytes      bigint     response bytes to the client
--   first_seen      timestamp  first request, UTC
--   last_seen       timestamp  last request, UTC
SELECT
  client_ip,
  count(*) AS requests,
  count_if(elb_status_code BETWEEN 400 AND 499) AS errors_4xx,
  count_if(elb_status_code BETWEEN 500 AND 599) AS errors_5xx,
  sum(received_bytes) AS received_bytes,
  sum(sent_bytes) AS sent_bytes,
  -- text order is time order (six fraction digits and a Z, always): parsed once per client
  from_iso8601_timestamp(min(time)) AS first_seen,
  from_iso8601_timestamp(max(time)) AS last_seen
FROM alb_logs
WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
  AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
GROUP BY 1
ORDER BY requests DESC, client_ip
LIMIT :limit
