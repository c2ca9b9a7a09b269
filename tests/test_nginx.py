"""The generated nginx config: `nginx -t` accepts it, and a real nginx runs it against the simulator.

nginx is a required test dependency (.ci/run installs it from Debian): a missing nginx FAILS this test
with instructions, it is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from albstats.cli import app
from albstats.parse import ParseStats, read_table
from albstats.proxy.upstream_sim import UpstreamSim, make_config


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not found:
        raise AssertionError(
            "nginx is not installed: the retry-proxy tests need it. Install it with "
            "`apt-get install -y nginx` (.ci/run does this before running the tests)."
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_generated_config_mentions_what_nginx_cannot_do():
    res = CliRunner().invoke(app, ["proxy", "nginx-config", "--upstream", "10.0.0.5:8080", "--listen", "80"])
    assert res.exit_code == 0, res.output
    conf = res.output
    assert "proxy_next_upstream error timeout http_502 http_503 http_504;" in conf
    assert "non_idempotent" not in conf.split("proxy_next_upstream ", 1)[1].split(";")[0]
    assert "proxy_next_upstream_tries 3;" in conf and "proxy_next_upstream_timeout 55s;" in conf
    assert conf.count("server 10.0.0.5:8080 max_fails=0;") == 3
    assert "no retry budget" in conf and "no backoff" in conf and "log_format albstats_alb" in conf
    seed = CliRunner().invoke(app, ["proxy", "nginx-config", "--upstream", "10.0.0.5:8080", "--policy", "seed"])
    assert "http_500 http_502 http_503 http_504 non_idempotent;" in seed.output
    assert "proxy_next_upstream_tries 5;" in seed.output and "3 s interval" in seed.output
    bad = CliRunner().invoke(app, ["proxy", "nginx-config", "--upstream", "http://x"])
    assert bad.exit_code == 2 and "HOST:PORT" in bad.output
    # a group option before the subcommand would be silently ignored: refused instead
    misplaced = CliRunner().invoke(app, ["proxy", "--policy", "seed", "nginx-config", "--upstream", "h:1"])
    assert misplaced.exit_code == 2 and "put options after `nginx-config`" in misplaced.output
    missing = CliRunner().invoke(app, ["proxy"])
    assert missing.exit_code == 2 and "--upstream is required" in missing.output


@pytest.mark.integration  # a real nginx
def test_nginx_runs_generated_config_against_simulator(tmp_path: Path):
    nginx = nginx_binary()
    port = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(prefix, 0o777)  # workers may run as nobody when the tests run as root

    async def main():
        sim = UpstreamSim(make_config(listen_port=0, error_rate=0.1, error_statuses=(502, 503), seed=5))
        sport = await sim.start()
        res = CliRunner().invoke(
            app,
            [
                "proxy",
                "nginx-config",
                "--upstream",
                f"127.0.0.1:{sport}",
                "--listen",
                f"127.0.0.1:{port}",
                "--prefix",
                str(prefix),
                "--workers",
                "1",
            ],
        )
        assert res.exit_code == 0, res.output
        conf = prefix / "nginx.conf"
        conf.write_text(res.output)
        env = {**os.environ, "TZ": "UTC"}
        check = subprocess.run(
            [nginx, "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert check.returncode == 0, check.stderr
        assert "syntax is ok" in check.stderr
        proc = await asyncio.create_subprocess_exec(
            nginx,
            "-p",
            str(prefix),
            "-e",
            str(prefix / "error.log"),
            "-c",
            str(conf),
            "-g",
            "daemon off;",
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            for _ in range(100):
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", port)
                    w.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"nginx did not start: {(prefix / 'error.log').read_text()}")
            base = f"http://127.0.0.1:{port}"
            sem = asyncio.Semaphore(20)
            async with aiohttp.ClientSession() as cs:

                async def one(method: str, i: int, extra: dict | None = None) -> int:
                    h = {"X-Request-Id": f"{method}{i}", **(extra or {})}
                    async with (
                        sem,
                        cs.request(
                            method, f"{base}/n?i={i}", headers=h, data=b"x" * 100 if method == "POST" else None
                        ) as r,
                    ):
                        await r.read()
                        return r.status

                gets = await asyncio.gather(*(one("GET", i) for i in range(300)))
                posts = await asyncio.gather(*(one("POST", i) for i in range(30)))
                async with cs.get(f"{base}/trace", headers={"X-Sim-Fail-Attempts": "2"}) as r:
                    trace_status = r.status
                    trace_echo = await r.json()
        finally:
            proc.send_signal(signal.SIGQUIT)  # graceful: finishes and flushes the log
            await asyncio.wait_for(proc.wait(), 20)
            await sim.close()
        return gets, posts, trace_status, trace_echo, sim.snapshot(detail=True), sport

    gets, posts, trace_status, trace_echo, snap, sport = asyncio.run(main())
    assert sum(s == 200 for s in gets) >= 295  # 3 tries at 10 % failures
    by = snap["by_request"]
    assert all(by[f"POST{i}"]["attempts"] == 1 for i in range(30))  # non_idempotent off
    assert sum(by[f"GET{i}"]["attempts"] for i in range(300)) > 300
    assert trace_status == 200 and trace_echo["attempt"] == 3  # one Root for all three attempts
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", trace_echo["key"])
    # the access log is an ALB log to albstats
    log = prefix / "access.log"
    stats = ParseStats()
    df = read_table([str(log)], stats=stats).to_pandas()
    assert stats.bad_lines == 0, stats.bad_examples()
    assert len(df) == 331
    for row in df.itertuples():
        m = re.search(r"[?&]i=(\d+)", row.request_url)
        if not m:
            continue
        seen = by[f"{row.request_verb}{m.group(1)}"]
        assert len(row.target_status_code_list.split()) == seen["attempts"]
        assert len(row.target_port_list.split()) == seen["attempts"]
        assert row.target_status_code_list.split() == seen["statuses"]
        assert set(row.target_port_list.split()) == {f"127.0.0.1:{sport}"}
        assert row.target_ip == "127.0.0.1" and row.target_port == sport
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", row.time)
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "albstats"),
            "parse",
            str(log),
            "-f",
            "jsonl",
            "-o",
            str(tmp_path / "out.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0 and "331 rows, 0 malformed lines" in cli.stderr, cli.stderr
