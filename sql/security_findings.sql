-- security_findings: requests that look like attacks or weak transport, by finding and top client.
--
-- Findings from ALB-native fields only (no WAF or application logs needed). Each row is one client
-- of one finding, ranked by that client's matching requests; the finding's totals repeat on each of
-- its rows. Matching is case-insensitive, in regular expressions that mean the same in Trino
-- (Java) and DuckDB (RE2): no look-around, no back-references. The rules, each written to keep
-- ordinary traffic out (README, "Security findings", has examples of what does and does not match):
--   scanner_user_agent  the User-Agent names a scanning tool as a word (sqlmap, nikto, nuclei, ...).
--   path_traversal      a `..` made of literal or %-encoded dots followed by a slash or backslash
--                       (literal, %2f, %5c, double-encoded), or /etc/passwd, win.ini, /proc/self/.
--   sql_injection       SQL syntax, not SQL words: UNION [ALL] SELECT; a quote then OR/AND and a
--                       comparison; a quote then a comment; ; then a statement keyword; sleep( /
--                       benchmark( / pg_sleep( / waitfor delay; information_schema, xp_cmdshell.
--                       A search such as ?q=select+a+chair does not match.
--   shell_injection     ; | && ` $( (literal or encoded) directly followed by a shell command
--                       (cat, id, wget, curl, sh, bash, nc, uname, whoami, ...), /bin/sh, cmd.exe,
--                       ${jndi: (Log4Shell), or the Shellshock prefix () { in the User-Agent.
--   dotfile_probe       a path segment that is exactly .env, .git, .svn, .hg, .aws, .ssh, .htaccess,
--                       .htpasswd or .DS_Store (optionally with a suffix after a dot, .env.bak).
--   admin_probe         a path segment that is exactly a well-known admin panel: wp-admin,
--                       wp-login.php, xmlrpc.php, phpmyadmin, pma, myadmin, administrator, admin,
--                       admin.php, manager/html (Tomcat). /admin-guide.html or /badminton do not match.
--   desync_severe       classification Severe (the load balancer's desync mitigation).
--   desync_ambiguous    classification Ambiguous.
--   waf_block           actions_executed ends with waf: AWS WAF was the final action (it blocked).
--   weak_tls            ssl_protocol is SSLv3, TLSv1 or TLSv1.1.
--   plain_http          type http answered with a non-3XX after a forward action: a plain-HTTP
--                       listener that serves content instead of redirecting to HTTPS.
--   many_4xx_client     a client with at least min_client_4xx 4XX answers that are at least half
--                       of its requests (enumeration, credential stuffing, broken bots).
-- Admin and dotfile rules look at the path only (before ?); the others at the whole URL. The URL
-- and User-Agent rules run once per distinct value, not once per request.
--
-- Parameters:
--   since           timestamp  start of the window, UTC, inclusive (default: all data)
--   until           timestamp  end of the window, UTC, exclusive (default: all data)
--   limit           int        top clients returned per finding (default: 5)
--   min_client_4xx  int        4XX answers that make a client a many_4xx_client (default: 100)
--
-- Columns:
--   finding             string     finding name (see above)
--   requests            bigint     matching requests, all clients
--   clients             bigint     distinct clients with matching requests
--   ok_responses        bigint     matching requests answered 200-299, all clients
--   first_seen          timestamp  first matching request, UTC
--   last_seen           timestamp  last matching request, UTC
--   client_rank         bigint     1 = the client with the most matching requests
--   client_ip           string     the client
--   client_requests     bigint     that client's matching requests
--   example_time        timestamp  that client's first matching request, UTC
--   example_verb        string     its request_verb
--   example_url         string     its request_url
--   example_user_agent  string     its user_agent
--   example_status      int        its elb_status_code
WITH url_rules AS (
  -- DISTINCT on the results too: the rules then run on the distinct URLs, before the join below
  SELECT DISTINCT
    url,
    regexp_like(lower(url), '(\.|%2e|%252e|%c0%ae)(\.|%2e|%252e|%c0%ae)(/|\\|%2f|%5c|%252f|%255c|%c0%af)|/etc/(passwd|shadow|hosts)|win\.ini|boot\.ini|/proc/self/') AS path_traversal,
    regexp_like(lower(url), 'union(\+|%20|%09|%0a|/\*[^*]*\*/|%2f%2a[^%]*%2a%2f)+(all(\+|%20|%09|%0a)+)?select|(''|%27|%22)(\+|%20|%09|%0a|\))*(or|and)(\+|%20|%09|%0a)+[''"%0-9a-z()]*(=|%3d|<|%3c|>|%3e|like)|(''|%27)(\+|%20|\))*(--|%2d%2d|#|%23)|(;|%3b)(\+|%20|%09|%0a)*(drop|insert|delete|update|select|exec|shutdown|truncate)(\+|%20|%09|%0a)|(sleep|benchmark|pg_sleep)(\+|%20)*(\(|%28)|waitfor(\+|%20)+delay|information_schema|xp_cmdshell|sysobjects') AS sql_injection,
    regexp_like(lower(url), '(;|%3b|\||%7c|&&|%26%26|`|%60|\$\(|%24%28)(\+|%20|%09)*(cat|id|wget|curl|sh|bash|nc|ncat|uname|whoami|ping|rm|chmod|python|perl|powershell)(\+|%20|%09|;|%3b|\)|%29|`|%60|$)|/bin/(ba)?sh|cmd\.exe|\$\{jndi:|%24%7bjndi') AS shell_injection_url,
    regexp_like(lower(split_part(url, '?', 1)), '/\.(env|git|svn|hg|aws|ssh|htaccess|htpasswd|ds_store)(\.[a-z0-9_-]+)?(/|$)') AS dotfile_probe,
    regexp_like(lower(split_part(url, '?', 1)), '/(wp-admin|wp-login\.php|xmlrpc\.php|phpmyadmin|pma|myadmin|administrator|admin|admin\.php|manager/html)(/|$)') AS admin_probe
  FROM (
    SELECT DISTINCT coalesce(request_url, '') AS url
    FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
  )
),
agent_rules AS (
  SELECT DISTINCT
    agent,
    regexp_like(lower(agent), '(^|[^a-z0-9])(sqlmap|nikto|nuclei|zgrab|masscan|nmap|gobuster|dirbuster|dirb|wpscan|acunetix|nessus|openvas|w3af|wfuzz|ffuf|feroxbuster|zmeu|jorgee|havij|arachni|skipfish|whatweb|netsparker|qualys|burpcollaborator|commix|xsstrike|joomscan|droopescan|censysinspect|l9explore|l9tcpid)([^a-z0-9]|$)') AS scanner_user_agent,
    regexp_like(lower(agent), '\(\) \{|\$\{jndi:') AS shell_injection_agent
  FROM (
    SELECT DISTINCT coalesce(user_agent, '') AS agent
    FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
  )
),
client_totals AS (
  SELECT client_ip, count(*) AS total, count_if(elb_status_code BETWEEN 400 AND 499) AS total_4xx
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
  GROUP BY client_ip
),
rule_hits AS (
  -- the requests matching at least one rule: few, even under attack, next to all requests
  SELECT
    time, client_ip, request_verb, request_url, user_agent, elb_status_code, type, ssl_protocol,
    actions_executed, classification
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
    AND (
      coalesce(request_url, '') IN (
        SELECT url FROM url_rules
        WHERE path_traversal OR sql_injection OR shell_injection_url OR dotfile_probe OR admin_probe
      )
      OR coalesce(user_agent, '') IN (
        SELECT agent FROM agent_rules WHERE scanner_user_agent OR shell_injection_agent
      )
      OR classification IN ('Severe', 'Ambiguous')
      OR ssl_protocol IN ('SSLv3', 'TLSv1', 'TLSv1.1')
      OR actions_executed = 'waf' OR actions_executed LIKE '%,waf'
      OR (
        type = 'http'
        AND NOT (elb_status_code BETWEEN 300 AND 399)
        AND (actions_executed = 'forward' OR actions_executed LIKE '%,forward')
      )
      OR (
        elb_status_code BETWEEN 400 AND 499
        AND client_ip IN (
          SELECT client_ip FROM client_totals WHERE total_4xx >= :min_client_4xx AND 2 * total_4xx >= total
        )
      )
    )
),
flagged AS (
  SELECT
    from_iso8601_timestamp(l.time) AS ts,
    l.client_ip,
    l.request_verb,
    l.request_url,
    l.user_agent,
    l.elb_status_code,
    l.classification,
    l.ssl_protocol,
    a.scanner_user_agent,
    u.path_traversal,
    u.sql_injection,
    u.shell_injection_url OR a.shell_injection_agent AS shell_injection,
    u.dotfile_probe,
    u.admin_probe,
    (l.actions_executed = 'waf' OR l.actions_executed LIKE '%,waf') AS waf_block,
    l.type = 'http'
      AND NOT (l.elb_status_code BETWEEN 300 AND 399)
      AND (l.actions_executed = 'forward' OR l.actions_executed LIKE '%,forward') AS plain_http,
    l.elb_status_code BETWEEN 400 AND 499
      AND c.total_4xx >= :min_client_4xx
      AND 2 * c.total_4xx >= c.total AS many_4xx_client
  FROM rule_hits AS l
  JOIN url_rules AS u ON coalesce(l.request_url, '') = u.url
  JOIN agent_rules AS a ON coalesce(l.user_agent, '') = a.agent
  JOIN client_totals AS c ON l.client_ip = c.client_ip
),
hits AS (
  SELECT 'scanner_user_agent' AS finding, ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE scanner_user_agent
  UNION ALL
  SELECT 'path_traversal', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE path_traversal
  UNION ALL
  SELECT 'sql_injection', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE sql_injection
  UNION ALL
  SELECT 'shell_injection', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE shell_injection
  UNION ALL
  SELECT 'dotfile_probe', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE dotfile_probe
  UNION ALL
  SELECT 'admin_probe', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE admin_probe
  UNION ALL
  SELECT 'desync_severe', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE classification = 'Severe'
  UNION ALL
  SELECT 'desync_ambiguous', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE classification = 'Ambiguous'
  UNION ALL
  SELECT 'waf_block', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE waf_block
  UNION ALL
  SELECT 'weak_tls', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE ssl_protocol IN ('SSLv3', 'TLSv1', 'TLSv1.1')
  UNION ALL
  SELECT 'plain_http', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE plain_http
  UNION ALL
  SELECT 'many_4xx_client', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM flagged
  WHERE many_4xx_client
),
per_client AS (
  SELECT
    finding,
    client_ip,
    count(*) AS client_requests,
    count_if(elb_status_code BETWEEN 200 AND 299) AS client_ok,
    min(ts) AS example_time,
    max(ts) AS client_last,
    min_by(request_verb, ts) AS example_verb,
    min_by(request_url, ts) AS example_url,
    min_by(user_agent, ts) AS example_user_agent,
    min_by(elb_status_code, ts) AS example_status
  FROM hits
  GROUP BY finding, client_ip
),
ranked AS (
  SELECT
    *,
    sum(client_requests) OVER (PARTITION BY finding) AS requests,
    count(*) OVER (PARTITION BY finding) AS clients,
    sum(client_ok) OVER (PARTITION BY finding) AS ok_responses,
    min(example_time) OVER (PARTITION BY finding) AS first_seen,
    max(client_last) OVER (PARTITION BY finding) AS last_seen,
    row_number() OVER (PARTITION BY finding ORDER BY client_requests DESC, client_ip) AS client_rank
  FROM per_client
)
SELECT
  finding,
  requests,
  clients,
  ok_responses,
  first_seen,
  last_seen,
  client_rank,
  client_ip,
  client_requests,
  example_time,
  example_verb,
  example_url,
  example_user_agent,
  example_status
FROM ranked
WHERE client_rank <= :limit
ORDER BY finding, client_rank
