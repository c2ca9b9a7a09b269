"""The reference retry proxy: an asyncio (aiohttp) reverse proxy in front of one upstream.

A request is tried again only while nothing has been sent to the client: the response is chosen
(forward it, or retry) from its status line and headers, and once its first byte goes to the client
the proxy is committed to it. Bodies stream both ways; request bodies up to the policy's replay limit
are buffered so a retry sends the same bytes, larger ones stream straight through and are never
retried.

Only the configured upstream is ever connected to: the upstream URL is built from the configured
origin plus the request's path and query, so an absolute-form request line (``GET http://other/``)
or a ``Host`` header cannot send the proxy elsewhere.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy, istr
from yarl import URL

from albstats.proxy.accesslog import AccessLog, ProxyStats, RequestRecord
from albstats.proxy.messages import (
    HOP_BY_HOP,
    NOT_UPSTREAM,
    NOT_UPSTREAM_STREAMED,
    _header_sizes,
    connection_tokens,
    lines_size,
    new_trace_root,
    origin_form,
    parse_listen,
    parse_upstream,
    path_and_query,
    to_drop,
    trace_header,
)
from albstats.proxy.policy import RetryBudget, RetryPolicy, make_policy, parse_retry_after

__all__ = [
    "HOP_BY_HOP",
    "BodyTooLarge",
    "ProxyConfig",
    "RetryProxy",
    "connection_tokens",
    "new_trace_root",
    "origin_form",
    "parse_listen",
    "parse_upstream",
    "run",
    "serve",
    "trace_header",
]

# header names as ``istr`` (aiohttp's own constants where it has them): a multidict takes an istr's
# case-folded identity from it instead of computing it per lookup or insertion
_XFF, _XFPROTO, _XFPORT = hdrs.X_FORWARDED_FOR, hdrs.X_FORWARDED_PROTO, hdrs.X_FORWARDED_PORT
_TRACE, _ATTEMPT = istr("X-Amzn-Trace-Id"), istr("X-Albstats-Attempt")
_CHUNK = 1 << 16
_SMALL = 1 << 16  # responses up to this size (with a Content-Length) are sent in one write


class BodyTooLarge(Exception):
    """The client sent more body than ``max_body``."""


@dataclass
class ProxyConfig:
    """Everything `albstats proxy` is configured with."""

    upstream: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    policy: RetryPolicy = field(default_factory=make_policy)
    access_log: str | None = None
    max_body: int = 10 << 20  # 413 above this
    max_header_bytes: int = 32 << 10  # 431 above this (all request headers together)
    max_header_field: int = 16 << 10  # 431 for one header line longer than this
    connect_timeout: float = 5.0
    max_connections: int = 1000
    elb_name: str = "app/albstats-proxy/0000000000000000"
    seed: int | None = None  # jitter RNG seed, for reproducible tests


class RetryProxy:
    """The proxy server. ``await start()``, then ``port``; ``await close()`` flushes the log."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.policy = config.policy
        self.upstream = parse_upstream(config.upstream)
        self._scheme, self._authority = self.upstream.scheme, self.upstream.origin().raw_authority
        self._prefix = self.upstream.raw_path.rstrip("/")
        self.stats = ProxyStats()
        self.budget = RetryBudget(self.policy.budget_ratio, self.policy.budget_floor, self.policy.budget_window)
        self.rng = random.Random(config.seed)
        self.log = AccessLog(config.access_log, elb=config.elb_name, node_ip=config.listen_host)
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._target_addr = f"{self.upstream.host}:{self.upstream.port}"
        self.port = config.listen_port
        self._port_text = str(self.port)
        # the session's timeouts alone bound an attempt exactly when the deadline is further away than
        # connect + one try (see _handle)
        pt = self.policy.per_try_timeout
        self._slack = (pt + config.connect_timeout) if pt else float("inf")

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> int:
        """Bind and start serving; returns the port (useful with port 0)."""
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # headers aiohttp would add by itself: the upstream sees only what the client sent (and ours)
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.config.connect_timeout, sock_read=self.policy.per_try_timeout
            ),
        )
        # aiohttp silently resends an idempotent request once when a reused connection drops: an attempt
        # outside the policy, the budget and the log. Off, as aiohttp's own test client does.
        self._session._retry_connection = False
        # the low-level server: every request line reaches handle(), none is answered by a router;
        # parser limits above ours, so an oversized header gets our 431 rather than the parser's 400
        server = web.Server(
            self.handle,
            access_log=None,
            auto_decompress=False,
            max_line_size=64 << 10,
            max_field_size=64 << 10,
            max_headers=256,
        )
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen_host, self.config.listen_port, backlog=1024)
        await site.start()
        if self._runner.addresses:  # the bound port (useful with port 0), from the runner's public API
            self.port = self._runner.addresses[0][1]
        self._port_text = str(self.port)
        self._flusher = asyncio.ensure_future(self._flush_loop())
        return self.port

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.log.flush()

    async def close(self) -> None:
        if self._flusher:
            self._flusher.cancel()
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()
        self.log.close()

    # --- request handling -----------------------------------------------------------------------

    def _upstream_headers(self, request: web.BaseRequest, rec: RequestRecord, keep_length: bool) -> CIMultiDict[str]:
        """The request's headers minus hop-by-hop ones and ``Expect``, with X-Forwarded-*, the trace id
        and ``X-Albstats-Attempt: 1`` (set again per retry) set on top: each replaces whatever the
        client sent under that name (the X-Forwarded-* values extend the client's). Copied whole,
        then what :func:`to_drop` names is removed."""
        h = request.headers
        out = CIMultiDict(h)
        for name in to_drop(h, NOT_UPSTREAM if keep_length else NOT_UPSTREAM_STREAMED):
            out.popall(name, None)  # a Connection token may name no header
        client = rec.client_ip if rec.client_ip != "-" else "unknown"
        out[_XFF] = f"{', '.join(h.getall(_XFF))}, {client}" if _XFF in h else client
        out[_TRACE] = rec.trace_id
        scheme = request.scheme
        out[_XFPROTO] = f"{', '.join(h.getall(_XFPROTO))}, {scheme}" if _XFPROTO in h else scheme
        out[_XFPORT] = f"{', '.join(h.getall(_XFPORT))}, {self._port_text}" if _XFPORT in h else self._port_text
        out[_ATTEMPT] = "1"
        return out

    async def _local(
        self, request: web.BaseRequest, rec: RequestRecord, status: int, text: str, close: bool = False
    ) -> web.Response:
        """A response generated by the proxy itself (no upstream response to forward)."""
        resp = web.Response(status=status, text=f"albstats-proxy: {text}\n")
        if close:
            resp.force_close()
        rec.elb_status = status
        if status in (502, 504):
            self.stats.proxy_errors += 1
        rec.first_byte_at = None
        try:
            await resp.prepare(request)
        except ConnectionError:
            self._client_gone(rec)
            return resp
        rec.sent_bytes = len(resp.body or b"") + 150  # type: ignore[arg-type]
        return resp

    def _client_gone(self, rec: RequestRecord) -> None:
        """ALB logs 460 when the client closes the connection before the response."""
        if rec.elb_status in (502, 504):
            self.stats.proxy_errors -= 1
        rec.elb_status = 460
        rec.error_reason = "ClientClosed"

    @staticmethod
    def _closed(request: web.BaseRequest) -> bool:
        return request.transport is None or request.transport.is_closing()

    async def _read_body(self, request: web.BaseRequest, rec: RequestRecord) -> tuple[object, bool]:
        """(body, replayable) of a request with a body. Small bodies are read whole; a larger one
        becomes a one-shot stream."""
        limit = self.policy.max_replay_body
        buf = bytearray()
        while len(buf) <= limit:
            chunk = await request.content.readany()
            if not chunk:
                rec.received_bytes += len(buf)
                if len(buf) > self.config.max_body:
                    raise BodyTooLarge
                return bytes(buf), True
            buf.extend(chunk)
            if len(buf) > self.config.max_body:
                raise BodyTooLarge
        max_body = self.config.max_body

        async def stream() -> AsyncIterator[bytes]:
            total = len(buf)
            yield bytes(buf)
            while chunk := await request.content.readany():
                total += len(chunk)
                if total > max_body:
                    raise BodyTooLarge
                yield chunk
            rec.received_bytes += total

        return stream(), False

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        t0 = time.monotonic()
        now = time.time()
        h = request.headers
        head_bytes = lines_size(request.raw_headers)
        # the request's record, as ALB logs it: one place, values read once
        tr = request.transport
        peer = tr.get_extra_info("peername") if tr else None
        host = h.get(hdrs.HOST) or f"{self.config.listen_host}:{self._port_text}"
        if host.rfind(":") <= host.rfind("]"):  # no port: no colon after an IPv6 literal's "]", or none at all
            host = f"{host}:{self._port_text}"
        raw_path = request.raw_path
        method = request.method
        v = request.version
        rec = RequestRecord(
            peer[0] if peer else "-",
            peer[1] if peer else None,
            method,
            f"http://{host}{raw_path if raw_path.startswith('/') else request.rel_url}",
            "HTTP/1.1" if v == (1, 1) else f"HTTP/{v.major}.{v.minor}",
            h.get(hdrs.USER_AGENT),
            trace_header(h.get(_TRACE), now),
            now,
            len(method) + len(raw_path) + 12 + head_bytes + 2,
        )
        self.stats.requests += 1
        self.budget.record_request(t0)
        try:
            return await self._handle(request, rec, t0, head_bytes)
        finally:
            rec.done_at = time.time()
            if not rec.elb_status:  # an unexpected error: aiohttp answers 500, and the log line stays valid
                rec.elb_status = 500
                rec.error_reason = rec.error_reason or "ProxyError"
            self.stats.record(rec)
            self.log.write(rec)

    async def _handle(
        self, request: web.BaseRequest, rec: RequestRecord, t0: float, head_bytes: int
    ) -> web.StreamResponse:
        cfg, pol = self.config, self.policy
        if request.method == "CONNECT":
            return await self._local(request, rec, 405, "CONNECT is not supported", close=True)
        # no line is longer than all of them together: the longest is measured only for a large total
        if head_bytes > cfg.max_header_bytes or (
            head_bytes > cfg.max_header_field and _header_sizes(request.raw_headers)[1] > cfg.max_header_field
        ):
            return await self._local(request, rec, 431, "request headers too large", close=True)
        body: object = None
        replayable = True
        if request.body_exists:  # most requests have none: no length, Expect or reading for them
            length = request.content_length
            if length is not None and length > cfg.max_body:
                return await self._local(request, rec, 413, "request body too large", close=True)
            if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue" and request.version >= (1, 1):
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                body, replayable = await self._read_body(request, rec)
            except BodyTooLarge:
                return await self._local(request, rec, 413, "request body too large", close=True)
        headers = self._upstream_headers(request, rec, keep_length=not replayable)
        path, query = path_and_query(request.raw_path)
        url = URL.build(
            scheme=self._scheme, authority=self._authority, path=self._prefix + path, query_string=query, encoded=True
        )
        deadline = t0 + pol.deadline
        slack = self._slack
        resp: aiohttp.ClientResponse | None = None
        timed_out = False
        attempt = 0
        while True:
            attempt += 1
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                timed_out = True
                break
            if attempt > 1 and self._closed(request):
                if resp is not None:
                    resp.release()
                self._client_gone(rec)
                return web.Response(status=460)  # nobody is listening; the status is for the log
            if attempt > 1:
                headers[_ATTEMPT] = str(attempt)
            rec.dispatched_at = time.time()
            rec.headers_at = None
            self.stats.attempts += 1
            rec.targets.append(self._target_addr)
            outcome = "response"
            try:
                sending = self._session.request(  # type: ignore[union-attr]
                    request.method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                )
                if body is None and remaining >= slack:
                    # no body to send: the session's own timeouts bound the attempt (sock_connect, then
                    # sock_read = the per-try timeout until the first response byte), and the deadline is
                    # far. A timer per attempt on top was ~3 % of the proxy's CPU per request.
                    resp = await sending
                else:
                    async with asyncio.timeout(min(pol.per_try_timeout or remaining, remaining)):
                        resp = await sending
            except BodyTooLarge:
                rec.statuses.append("-")
                return await self._local(request, rec, 413, "request body too large", close=True)
            except TimeoutError:
                outcome, resp, timed_out = "timeout", None, True
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError, OSError):
                outcome, resp, timed_out = "connection", None, False
            if resp is not None:
                rec.headers_at = time.time()
                rec.statuses.append(str(resp.status))
                timed_out = False
                if not pol.status_retryable(resp.status):
                    break
            else:
                rec.statuses.append("-")
            # a retryable failure: may we, and should we, try again?
            if attempt >= pol.max_attempts:
                break
            if not (replayable and pol.method_retryable(request.method, headers)):
                self.stats.not_retried_unsafe += 1
                break
            if (outcome == "timeout" and not pol.retry_timeouts) or (
                outcome == "connection" and not pol.retry_connect_errors
            ):
                break
            wait = pol.backoff(attempt, self.rng)
            if resp is not None and pol.honour_retry_after:
                ra = parse_retry_after(resp.headers.get("Retry-After"))
                if ra is not None:
                    wait = max(wait, ra)
            if time.monotonic() + wait >= deadline:
                break  # a retry that cannot finish in time only adds load
            if not self.budget.try_acquire():
                self.stats.budget_refusals += 1
                break
            if resp is not None:
                resp.release()
                resp = None
            self.stats.retries += 1
            await asyncio.sleep(wait)

        if resp is None:
            status = 504 if timed_out else 502
            what = "timed out" if timed_out else "unreachable"
            return await self._local(request, rec, status, f"upstream {what} after {attempt} attempt(s)")
        # the chosen response: from its first byte to the client on there is no retry
        rec.elb_status = resp.status
        length = resp.content_length
        if length is None or length > _SMALL or request.method == "HEAD":
            return await self._stream(request, rec, resp)
        # small and of known length (nearly every response): read whole, sent in one write
        try:
            body = await resp.read()
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, OSError, TimeoutError):
            resp.release()
            rec.error_reason = "UpstreamBodyIncomplete"
            return await self._local(request, rec, 502, "upstream response body incomplete")
        return self._small(request, rec, resp, body)

    @staticmethod
    def _response_headers(resp: aiohttp.ClientResponse, rec: RequestRecord) -> CIMultiDictProxy[str] | CIMultiDict[str]:
        """The upstream response's headers minus hop-by-hop ones, for web.Response (which copies them),
        and their size on the wire (status line and ``Name: value\r\n`` lines) into
        ``rec.sent_bytes``. Passed on as they are when nothing is to be dropped, as for nearly every
        response."""
        rh: CIMultiDictProxy[str] | CIMultiDict[str] = resp.headers
        if dropped := to_drop(rh, HOP_BY_HOP):
            kept = CIMultiDict(rh)
            for name in dropped:
                kept.popall(name, None)
            rh = kept
        rec.sent_bytes = 17 + len(resp.reason or "") + lines_size(rh.items())
        return rh

    def _small(
        self, request: web.BaseRequest, rec: RequestRecord, resp: aiohttp.ClientResponse, body: bytes
    ) -> web.Response:
        """The response for aiohttp to send: it writes status, headers and body as soon as the handler
        returns, with no await in between, so the client is gone now exactly when that write would
        fail (preparing and writing it here instead cost two more coroutines per request)."""
        small = web.Response(
            status=resp.status, reason=resp.reason, body=body, headers=self._response_headers(resp, rec)
        )
        resp.release()
        rec.sent_bytes += len(body)
        if self._closed(request):
            self._client_gone(rec)
        rec.first_byte_at = time.time()
        return small

    async def _stream(
        self, request: web.BaseRequest, rec: RequestRecord, resp: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        """Stream a large (or unsized) upstream response to the client, chunk by chunk."""
        out = web.StreamResponse(status=resp.status, reason=resp.reason, headers=self._response_headers(resp, rec))
        head = rec.sent_bytes
        try:
            rec.first_byte_at = time.time()
            await out.prepare(request)
            sent = 0
            try:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    await out.write(chunk)
                    sent += len(chunk)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, OSError, TimeoutError):
                # upstream broke mid-body: the client must see a broken response, not a short "complete" one
                rec.error_reason = "UpstreamBodyIncomplete"
                if request.transport is not None:
                    request.transport.abort()
                rec.sent_bytes = head + sent
                return out
            await out.write_eof()
            rec.sent_bytes = head + sent
            return out
        except ConnectionError:
            self._client_gone(rec)
            return out
        finally:
            resp.release()


async def serve(
    config: ProxyConfig, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> ProxyStats:
    """Run until ``stop`` is set (or SIGINT/SIGTERM); returns the counters for the summary."""
    proxy = RetryProxy(config)
    await proxy.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    print(
        f"albstats proxy: listening on http://{config.listen_host}:{proxy.port} -> {proxy.upstream}; "
        f"{proxy.policy.describe()}",
        file=sys.stderr,
        flush=True,
    )
    if ready:
        ready.set()
    try:
        await stop.wait()
    finally:
        await proxy.close()
    print(f"albstats proxy: {proxy.stats.summary()}", file=sys.stderr, flush=True)
    return proxy.stats


def run(config: ProxyConfig) -> ProxyStats:
    """Blocking entry point for the CLI."""
    return asyncio.run(serve(config))
