"""S3 faults on GetObject (issue 12 item 12, S3 part), over real sockets: moto's server on loopback behind a
small TCP proxy written here that answers ``503 SlowDown`` / ``500 InternalError`` or cuts a body short.

What must hold: a fault is retried with backoff and the data read is byte for byte the object (so the
numbers equal those from the same files on disk); when faults persist, the read fails with one line
naming ``s3://bucket/key`` and AWS's own code and message, and a non-zero exit.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from albstats import s3_client
from albstats.errors import AwsError
from albstats.generate import generate

#: moto's server on loopback behind a fault-injecting proxy, and the CLI as subprocesses.
pytestmark = pytest.mark.integration

ALBSTATS = [sys.executable, "-c", "from albstats.cli import main; main()"]
BUCKET = "fault-logs"
SLOWDOWN = (503, "SlowDown", "Please reduce your request rate.")
INTERNAL = (500, "InternalError", "We encountered an internal error. Please try again.")


@dataclass
class FaultProxy:
    """HTTP/1.1 proxy on 127.0.0.1: one request per connection, forwarded to moto unless a fault is queued.

    ``faults[key]`` is a list consumed one per GetObject of that key: an ``(status, code, message)``
    error answer, or ``("cut", n)`` to send the real headers and only ``n`` body bytes, then close.
    ``faults["LIST"]`` is consumed one per ListObjectsV2 (error answers only).
    """

    upstream: tuple[str, int]
    faults: dict[str, list[tuple]] = field(default_factory=dict)
    gets: list[tuple[str, str | None]] = field(default_factory=list)  # (key, Range header) of every GetObject
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
            hmap = {k.lower(): v for k, v in headers}
            while len(body) < int(hmap.get("content-length", 0)):
                body += conn.recv(65536)
            path = target.split("?", 1)[0]
            parts = path.lstrip("/").split("/", 1)
            fault = None
            if method == "GET" and "list-type=2" in target:  # ListObjectsV2, faults under the key "LIST"
                with self.lock:
                    queue = self.faults.get("LIST")
                    fault = queue.pop(0) if queue else None
            elif method == "GET" and len(parts) == 2 and parts[1] and "?" not in target:
                key = parts[1]
                with self.lock:
                    self.gets.append((key, hmap.get("range")))
                    queue = self.faults.get(key)
                    fault = queue.pop(0) if queue else None
            if fault is not None and fault[0] != "cut":
                status, code, message = fault
                xml = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message>"
                    f"<RequestId>proxy</RequestId></Error>"
                ).encode()
                conn.sendall(
                    f"HTTP/1.1 {status} Error\r\nContent-Type: application/xml\r\nContent-Length: {len(xml)}"
                    f"\r\nConnection: close\r\n\r\n".encode()
                    + xml
                )
                return
            up = http.client.HTTPConnection(*self.upstream, timeout=30)
            try:
                up.request(
                    method,
                    target,
                    body=body or None,
                    headers={k: v for k, v in headers if k.lower() not in ("connection", "keep-alive")},
                )
                resp = up.getresponse()
                payload = resp.read()
                out = [f"HTTP/1.1 {resp.status} {resp.reason}"]
                out += [
                    f"{k}: {v}"
                    for k, v in resp.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")
                ]
                out += [f"Content-Length: {len(payload)}", "Connection: close"]
                raw = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
                if fault is not None:  # ("cut", n): the promised length, then only n bytes, then the connection ends
                    conn.sendall(raw + payload[: fault[1]])
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                conn.sendall(raw + payload)
            finally:
                up.close()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[tuple[str, int]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server.get_host_and_port()
    server.stop()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faultlogs")
    generate(out, start="2026-11-17T00:00:00Z", days=1 / 24, rps=2.0, seed=11, nodes=1, control_file=False)
    return out


@pytest.fixture
def proxy(
    moto_server: tuple[str, int], logs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[FaultProxy, str, dict[str, bytes]]]:
    """The proxy, its URL and the uploaded objects (key -> bytes), with the environment pointing at it."""
    host, port = moto_server
    p = FaultProxy((host, port))
    url = p.start()
    env = dict(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,
        AWS_MAX_ATTEMPTS="3",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        ALBSTATS_CACHE_DB=str(tmp_path / "c.duckdb"),
    )
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_RETRY_MODE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    direct = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
    try:
        direct.create_bucket(Bucket=BUCKET)
    except direct.exceptions.BucketAlreadyOwnedByYou:
        pass
    objects = {}
    for f in sorted(logs.rglob("*.log.gz")):
        key = f.relative_to(logs).as_posix()
        objects[key] = f.read_bytes()
        direct.put_object(Bucket=BUCKET, Key=key, Body=objects[key])
    monkeypatch.setattr(s3_client, "BODY_RETRY_BASE", 0.01)  # the library's own backoff, shortened in-process
    yield p, url, objects
    p.stop()


def _client() -> object:
    return s3_client.client("s3")


def _etag(key: str) -> str:
    return boto3.client("s3").head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')


def test_body_cut_mid_stream_is_resumed_with_a_range(proxy: tuple[FaultProxy, str, dict[str, bytes]]) -> None:
    p, _, objects = proxy
    key, want = max(objects.items(), key=lambda kv: len(kv[1]))
    assert len(want) > 20_000
    p.faults[key] = [("cut", 5_000), ("cut", 7_000)]
    reader = s3_client.ObjectReader(_client(), BUCKET, key, _etag(key))
    got = b""
    while chunk := reader.read(1_000):
        got += chunk
    reader.close()
    assert got == want
    assert reader.retries == 2
    ranges = [r for k, r in p.gets if k == key]
    assert ranges[0] is None and len(ranges) == 3
    assert all(r and r.startswith("bytes=") and 0 < int(r[6:-1]) < len(want) for r in ranges[1:])


def test_slowdown_and_5xx_are_retried(proxy: tuple[FaultProxy, str, dict[str, bytes]]) -> None:
    p, _, objects = proxy
    key, want = next(iter(objects.items()))
    p.faults[key] = [SLOWDOWN, INTERNAL]  # two of the three attempts AWS_MAX_ATTEMPTS allows
    with s3_client.ObjectReader(_client(), BUCKET, key, _etag(key)) as r:
        assert r.read() == want
    assert [k for k, _ in p.gets].count(key) == 3


def test_persistent_slowdown_fails_with_awss_reason_naming_the_object(
    proxy: tuple[FaultProxy, str, dict[str, bytes]],
) -> None:
    p, _, objects = proxy
    key = next(iter(objects))
    p.faults[key] = [SLOWDOWN] * 10
    with pytest.raises(AwsError) as ei:
        s3_client.ObjectReader(_client(), BUCKET, key).read()
    assert str(ei.value) == (
        f"reading s3://{BUCKET}/{key} (gave up after 3 attempts): SlowDown: Please reduce your request rate."
    )
    assert [k for k, _ in p.gets].count(key) == 3


def test_a_body_cut_on_every_attempt_fails_naming_the_object(proxy: tuple[FaultProxy, str, dict[str, bytes]]) -> None:
    p, _, objects = proxy
    key = next(iter(objects))
    p.faults[key] = [("cut", 100)] * 10
    with pytest.raises(AwsError) as ei:
        s3_client.ObjectReader(_client(), BUCKET, key).read()
    msg = str(ei.value)
    assert msg.startswith(
        f"reading s3://{BUCKET}/{key}: the connection broke after 0 bytes (gave up after 3 attempts): "
    )
    assert "\n" not in msg


def _run(url: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALBSTATS_ATHENA_")}
    return subprocess.run([*ALBSTATS, *args], env=env, capture_output=True, text=True, timeout=300)


def test_cli_query_over_faulty_s3_gives_the_disk_numbers_or_one_line(
    proxy: tuple[FaultProxy, str, dict[str, bytes]], logs: Path
) -> None:
    p, url, objects = proxy
    keys = sorted(objects)
    window = [
        "--since",
        "2026-11-17T00:00:00Z",
        "--until",
        "2026-11-17T01:00:00Z",
        "--bucket",
        "5m",
        "--format",
        "json",
        "-q",
        "--no-cache",
    ]
    disk = _run(url, ["query", "error_rate", str(logs), *window])
    assert disk.returncode == 0, disk.stderr
    # one object cut mid-body, another answered SlowDown once, a third 503 once: the same numbers
    p.faults[keys[0]] = [("cut", 3_000)]
    p.faults[keys[1]] = [SLOWDOWN]
    p.faults[keys[2]] = [(503, "ServiceUnavailable", "Service is unable to handle request.")]
    res = _run(url, ["query", "error_rate", f"s3://{BUCKET}/", *window])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == json.loads(disk.stdout) and json.loads(res.stdout)
    assert not any(p.faults.values())  # every fault was met
    # SlowDown that does not stop: one line naming the object, AWS's code and message, exit 1
    p.faults[keys[3]] = [SLOWDOWN] * 20
    res = _run(url, ["query", "error_rate", f"s3://{BUCKET}/", *window])
    assert res.returncode == 1, res.stderr
    assert res.stderr == (
        f"albstats: error: reading s3://{BUCKET}/{keys[3]} (gave up after 3 attempts): "
        f"SlowDown: Please reduce your request rate.\n"
    )


def test_cli_fetch_with_a_failing_object(proxy: tuple[FaultProxy, str, dict[str, bytes]], tmp_path: Path) -> None:
    p, url, objects = proxy
    keys = sorted(objects)
    p.faults[keys[0]] = [("cut", 2_000)]  # recovers
    p.faults[keys[1]] = [INTERNAL] * 20  # does not
    out = tmp_path / "mirror"
    res = _run(url, ["fetch", f"s3://{BUCKET}/", "-o", str(out), "-q"])
    assert res.returncode == 1
    assert res.stderr.startswith(
        f"albstats: error: reading s3://{BUCKET}/{keys[1]} (gave up after 3 attempts): "
        f"InternalError: We encountered an internal error. Please try again."
    )
    assert res.stderr.count("\n") == 1
    assert (out / keys[0]).read_bytes() == objects[keys[0]]
    assert not (out / keys[1]).exists() and not list(out.rglob("*.part"))


def test_listing_throttled_is_retried_then_one_line(
    proxy: tuple[FaultProxy, str, dict[str, bytes]], tmp_path: Path
) -> None:
    p, url, objects = proxy
    p.faults["LIST"] = [SLOWDOWN]  # once: retried, the mirror is complete
    res = _run(url, ["fetch", f"s3://{BUCKET}/", "-o", str(tmp_path / "a"), "-q"])
    assert res.returncode == 0, res.stderr
    assert sorted(f.relative_to(tmp_path / "a").as_posix() for f in (tmp_path / "a").rglob("*.log.gz")) == sorted(
        objects
    )
    p.faults["LIST"] = [SLOWDOWN] * 50  # never ends
    res = _run(url, ["fetch", f"s3://{BUCKET}/", "-o", str(tmp_path / "b"), "-q"])
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"albstats: error: listing s3://{BUCKET}/")
    assert res.stderr.endswith("(gave up after 3 attempts): SlowDown: Please reduce your request rate.\n")
