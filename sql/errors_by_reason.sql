-- errors_by_reason: 5XX by elb_status_code x error reason x desync classification.
--
-- Why did requests fail? lambda_error_reason is the log's error_reason field (named as in AWS's
-- Athena table): e.g. LambdaUnhandled, TargetConnectionError, TargetResponseError, '-' when none.
-- classification is the HTTP desync classification (Acceptable, Ambiguous, Severe; '-' or NULL in
-- older log formats). share is the row's fraction of all 5XX in the window.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   limit   int        rows returned (default: 50)
--
-- Columns:
--   elb_status_code      int     status the load balancer returned, 500-599
--   lambda_error_reason  string  error reason code, '-' when none
--   classification       string  desync classification
--   requests             bigint  5XX responses with this combination
--   share                double  requests / all 5XX in the window
SELECT
  elb_status_code,
  lambda_error_reason,
  classification,
  count(*) AS requests,
  CAST(count(*) AS double) / sum(count(*)) OVER () AS share
FROM alb_logs
WHERE elb_status_code BETWEEN 500 AND 599
  AND from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
  AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
GROUP BY 1, 2, 3
ORDER BY requests DESC, elb_status_code, lambda_error_reason, classification
LIMIT :limit
