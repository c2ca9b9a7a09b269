-- data_span: how many requests the window holds and the first and last request time.
--
-- Used by `albstats report` to state the window actually covered when the user gave no --since or
-- --until (the report then covers all the data given), and for the data-quality section.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--
-- Columns:
--   requests       bigint     requests in the window
--   first_request  timestamp  earliest `time` in the window, UTC (NULL when empty)
--   last_request   timestamp  latest `time` in the window, UTC (NULL when empty)
SELECT
  -- min and max of the text, parsed once: ALB writes every time with six fraction digits and a Z,
  -- so text order is time order, and an open window then needs no parse of every row
  count(*) AS requests,
  from_iso8601_timestamp(min(time)) AS first_request,
  from_iso8601_timestamp(max(time)) AS last_request
FROM alb_logs
WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
  AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
