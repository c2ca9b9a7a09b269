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
-- Admin and dotfile rules look at the path only (before ?); the others at the whole URL.
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
WITH logs AS (
  SELECT
    from_iso8601_timestamp(time) AS ts,
    client_ip,
    request_verb,
    request_url,
    lower(split_part(request_url, '?', 1)) AS url_path,
    user_agent,
    elb_status_code,
    type,
    ssl_protocol,
    actions_executed,
    classification
  FROM alb_logs
  WHERE from_iso8601_timestamp(time) >= from_iso8601_timestamp(:since)
    AND from_iso8601_timestamp(time) < from_iso8601_timestamp(:until)
),
client_totals AS (
  SELECT client_ip, count(*) AS total, count_if(elb_status_code BETWEEN 400 AND 499) AS total_4xx
  FROM logs
  GROUP BY client_ip
),
hits AS (
  SELECT 'scanner_user_agent' AS finding, ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE regexp_like(lower(user_agent), '(^|[^a-z0-9])(sqlmap|nikto|nuclei|zgrab|masscan|nmap|gobuster|dirbuster|dirb|wpscan|acunetix|nessus|openvas|w3af|wfuzz|ffuf|feroxbuster|zmeu|jorgee|havij|arachni|skipfish|whatweb|netsparker|qualys|burpcollaborator|commix|xsstrike|joomscan|droopescan|censysinspect|l9explore|l9tcpid)([^a-z0-9]|$)')
  UNION ALL
  SELECT 'path_traversal', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE regexp_like(lower(request_url), '(\.|%2e|%252e|%c0%ae)(\.|%2e|%252e|%c0%ae)(/|\\|%2f|%5c|%252f|%255c|%c0%af)|/etc/(passwd|shadow|hosts)|win\.ini|boot\.ini|/proc/self/')
  UNION ALL
  SELECT 'sql_injection', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE regexp_like(lower(request_url), 'union(\+|%20|%09|%0a|/\*[^*]*\*/|%2f%2a[^%]*%2a%2f)+(all(\+|%20|%09|%0a)+)?select|(''|%27|%22)(\+|%20|%09|%0a|\))*(or|and)(\+|%20|%09|%0a)+[''"%0-9a-z()]*(=|%3d|<|%3c|>|%3e|like)|(''|%27)(\+|%20|\))*(--|%2d%2d|#|%23)|(;|%3b)(\+|%20|%09|%0a)*(drop|insert|delete|update|select|exec|shutdown|truncate)(\+|%20|%09|%0a)|(sleep|benchmark|pg_sleep)(\+|%20)*(\(|%28)|waitfor(\+|%20)+delay|information_schema|xp_cmdshell|sysobjects')
  UNION ALL
  SELECT 'shell_injection', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE regexp_like(lower(request_url), '(;|%3b|\||%7c|&&|%26%26|`|%60|\$\(|%24%28)(\+|%20|%09)*(cat|id|wget|curl|sh|bash|nc|ncat|uname|whoami|ping|rm|chmod|python|perl|powershell)(\+|%20|%09|;|%3b|\)|%29|`|%60|$)|/bin/(ba)?sh|cmd\.exe|\$\{jndi:|%24%7bjndi')
     OR regexp_like(lower(user_agent), '\(\) \{|\$\{jndi:')
  UNION ALL
  SELECT 'dotfile_probe', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE regexp_like(url_path, '/\.(env|git|svn|hg|aws|ssh|htaccess|htpasswd|ds_store)(\.[a-z0-9_-]+)?(/|$)')
  UNION ALL
  SELECT 'admin_probe', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE regexp_like(url_path, '/(wp-admin|wp-login\.php|xmlrpc\.php|phpmyadmin|pma|myadmin|administrator|admin|admin\.php|manager/html)(/|$)')
  UNION ALL
  SELECT 'desync_severe', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE classification = 'Severe'
  UNION ALL
  SELECT 'desync_ambiguous', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE classification = 'Ambiguous'
  UNION ALL
  SELECT 'waf_block', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE regexp_like(actions_executed, '(^|,)waf$')
  UNION ALL
  SELECT 'weak_tls', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE ssl_protocol IN ('SSLv3', 'TLSv1', 'TLSv1.1')
  UNION ALL
  SELECT 'plain_http', ts, client_ip, request_verb, request_url, user_agent, elb_status_code
  FROM logs
  WHERE type = 'http'
    AND NOT (elb_status_code BETWEEN 300 AND 399)
    AND regexp_like(actions_executed, '(^|,)forward$')
  UNION ALL
  SELECT 'many_4xx_client', l.ts, l.client_ip, l.request_verb, l.request_url, l.user_agent, l.elb_status_code
  FROM logs l
  JOIN client_totals c ON l.client_ip = c.client_ip
  WHERE l.elb_status_code BETWEEN 400 AND 499
    AND c.total_4xx >= :min_client_4xx
    AND 2 * c.total_4xx >= c.total
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
