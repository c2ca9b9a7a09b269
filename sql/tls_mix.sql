-- tls_mix: the TLS protocol and cipher mix.
--
-- Which TLS versions and ciphers do clients negotiate, and could an old one be switched off?
-- '-' is a request without TLS (a plain HTTP listener). share is the fraction of all requests in
-- the window.
--
-- Parameters:
--   since   timestamp  start of the window, UTC, inclusive (default: all data)
--   until   timestamp  end of the window, UTC, exclusive (default: all data)
--   limit   int        rows returned (default: 50)
--
-- Columns:
--   ssl_protocol  string  TLS version, '-' without TLS
--   ssl_cipher    string  OpenSSL cipher name, '-' without TLS
--   requests      bigint  requests with this protocol and cipher
--   clients       bigint  distinct client IPs
--   share         double  requests / all requests in the window
SELECT
  ssl_protocol,
  ssl_cipher,
  count(*) AS requests,
  count(DISTINCT client_ip) AS clients,
  CAST(count(*) AS double) / sum(count(*)) OVER () AS share
FROM alb_logs
WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
  AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
GROUP BY 1, 2
ORDER BY requests DESC, ssl_protocol, ssl_cipher
LIMIT :limit
