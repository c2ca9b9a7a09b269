"""report.html in a real browser: headless Chromium over the DevTools protocol (a websocket on 127.0.0.1).

Checks every image decodes, the page requests nothing but itself and its data: URIs, logs no console
error, and stays inside the viewport at 1280 and 390 px (wide tables scroll in place). Saves a
full-page screenshot at each width beside the report (look at them: tmp_path / "shots").
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from albstats.cli import app

#: A headless chromium renders the report.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("browser")
    r = CliRunner().invoke(
        app,
        [
            "report",
            str(ROOT / "fixtures" / "AWSLogs"),
            "--slo-file",
            str(ROOT / "fixtures" / "slo.yaml"),
            "--out",
            str(d / "out"),
            "--quiet",
            "--db",
            str(d / "c.duckdb"),
        ],
        prog_name="albstats",
    )
    assert r.exit_code == 0, r.output
    return d / "out" / "report.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium with a fresh profile; yields the browser's websocket URL; ended by its own pid."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"chromium did not start (exit {proc.poll()})")
        time.sleep(0.1)
    port, path = port_file.read_text().splitlines()[:2]
    try:
        yield f"ws://127.0.0.1:{port}{path}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


class Cdp:
    """A minimal DevTools client: commands with ids, events collected, every wait bounded."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_str(json.dumps(msg))
        res = await asyncio.wait_for(fut, 60)
        assert "error" not in res, (method, res["error"])
        return res["result"]

    async def wait_event(self, method: str, session: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e.get("method") == method and e.get("sessionId") == session:
                    return e
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {method} within {timeout} s")


async def visit(ws_url: str, html: Path, width: int, shot: Path) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        cdp = Cdp(ws)
        target = (await cdp.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        s = (await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            await cdp.send(f"{domain}.enable", session=s)
        await cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
            s,
        )
        cdp.events.clear()
        await cdp.send("Page.navigate", {"url": html.as_uri()}, s)
        await cdp.wait_event("Page.loadEventFired", s)
        images = await cdp.send(
            "Runtime.evaluate",
            {
                "expression": "Promise.all(Array.from(document.images).map(i => i.decode().then("
                "() => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().right], "
                "e => ['failed', String(e)])))",
                "awaitPromise": True,
                "returnByValue": True,
            },
            s,
        )
        layout = await cdp.send(
            "Runtime.evaluate",
            {
                "expression": "({page: document.documentElement.scrollWidth, view: window.innerWidth, "
                "height: document.documentElement.scrollHeight, "
                "tables: Array.from(document.querySelectorAll('table')).map(t => "
                "[t.getBoundingClientRect().right, t.scrollWidth, t.clientWidth])})",
                "returnByValue": True,
            },
            s,
        )
        metrics = layout["result"]["value"]
        png = await cdp.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": min(metrics["height"], 16000), "scale": 1},
            },
            s,
        )
        shot.write_bytes(base64.b64decode(png["data"]))
        await cdp.send("Target.closeTarget", {"targetId": target})
        cdp.reader.cancel()
        return {"images": images["result"]["value"], "layout": metrics, "events": list(cdp.events)}


@pytest.mark.parametrize("width", [1280, 390])
def test_report_in_chromium(report_html, browser, width):
    shots = report_html.parent.parent / "shots"
    shots.mkdir(exist_ok=True)
    shot = shots / f"report-{width}.png"
    got = asyncio.run(asyncio.wait_for(visit(browser, report_html, width, shot), 180))

    assert len(got["images"]) == 5
    for img in got["images"]:
        assert img[0] != "failed", img
        w, h, right = img
        assert w == 900 and h == 360  # the PNG decoded at its real size
        assert right <= width + 0.5  # scaled down to fit, never wider than the viewport

    requests = [e["params"]["request"]["url"] for e in got["events"] if e.get("method") == "Network.requestWillBeSent"]
    assert requests and requests[0] == report_html.as_uri()
    assert all(u == report_html.as_uri() or u.startswith("data:") for u in requests), requests

    errors = [
        e
        for e in got["events"]
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert not errors, errors

    lay = got["layout"]
    assert lay["page"] <= lay["view"], lay  # nothing makes the page scroll sideways
    # every table stays in the viewport; one wider than its box scrolls inside it (overflow-x: auto)
    assert all(right <= width + 0.5 for right, _, _ in lay["tables"]), lay["tables"]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == width
