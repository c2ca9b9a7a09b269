"""The generator package: output pinned across the re-cut, named columns, module layering.

tests/test_generate.py checks what the logs look like (layout, distributions, CLI, fixtures); this
file checks that the package split (world, plan, template, traffic, scanners, render, writer, run)
keeps the output byte for byte, that every named value lands in the schema column of its name, and
that the modules depend on each other in one direction only.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from albstats.generate import ERAS, PROFILES, generate, line_segments
from albstats.generate.plan import NDRAWS, Plan, file_jobs
from albstats.generate.render import Clock, _columns, batch_lines
from albstats.generate.template import NODE_SLOT, SLOT_NAMES, line_template
from albstats.generate.traffic import simulate
from albstats.generate.world import World
from albstats.logformat import format_line
from albstats.parse import parse_line, tokenize
from albstats.schema import ACCESS

PACKAGE = Path(__file__).resolve().parents[1] / "albstats" / "generate"

#: Small runs and the sha256 of their (key, decompressed content) pairs, recorded from generate.py
#: before it became a package (the same digests came from both). A change here changes every
#: user's synthetic data and the committed fixtures: only on purpose, with fixtures regenerated.
GOLDEN = {
    "default-rps": (
        dict(days=0.05, rps=3, seed=3),
        28,
        7000,
        "c8d0e575511ba87c26a5032fad5fd16325fdc49e61d974f34b4de9e423485e45",
    ),
    "hosp-lines-era29": (
        dict(days=0.1, lines=3000, seed=5, profile="hosp", nodes=2, format_era=29),
        58,
        3000,
        "568ce2609853f29da0294620083c7d75095a08039a2f1f5ca58ce4368f455ad8",
    ),
    "hosp-midnight-era36": (
        dict(start="2026-11-16T23:40:00Z", days=0.05, rps=4, seed=4, profile="hosp", format_era=36),
        42,
        9913,
        "c55ec9d7f83e3d17cfc67770ed9f62b0f10ad8b42c70346234b828c2c2c601df",
    ),
}


def _digest(root: Path) -> tuple[str, list[str]]:
    """sha256 over every file's key and content (gzip decompressed: zlib builds may compress differently)."""
    h = hashlib.sha256()
    lines: list[str] = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name.endswith(".gz"):
                data = gzip.decompress(data)
                lines += data.decode().splitlines()
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + data + b"\0")
    return h.hexdigest(), lines


@pytest.mark.integration  # slow: 2 s under load
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_output_is_pinned(tmp_path, case):
    args, files, nlines, sha = GOLDEN[case]
    s = generate(tmp_path, **args)
    digest, lines = _digest(tmp_path)
    assert (s.files, s.lines, len(lines)) == (files, nlines, nlines)
    # the pinned runs exercise the scanner paths too: WAF blocks, Severe rejections, non-HTTP probes
    era = args.get("format_era", 34)
    rows = [dict(zip(ACCESS.names, parse_line(ln), strict=True)) for ln in lines]
    assert all(len(tokenize(ln)) == era for ln in lines)
    scanners = set(s.scanners)
    scan = [r for r in rows if r["client_ip"] in scanners]
    assert scan and any(r["request_verb"] == "-" for r in scan)
    assert any(r["actions_executed"] == "waf" for r in scan) or era < 25  # actions_executed is from 2018
    assert digest == sha, f"{case}: generated output changed (was {sha})"


@pytest.mark.integration  # slow: 3 s under load
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("era", [20, 29, 34, 36])
def test_every_line_parses_and_counts_per_scenario(tmp_path, profile, era):
    s = generate(tmp_path, days=1, lines=6000, seed=11, profile=profile, format_era=era, compresslevel=1)
    _, lines = _digest(tmp_path)
    assert s.lines == len(lines) == 6000
    assert s.files == len(list(tmp_path.rglob("*.log.gz")))
    ntok = min(era, len(ACCESS.tokens))
    scan = 0
    for line in lines:
        assert len(tokenize(line)) == era, line
        row = dict(zip(ACCESS.names, parse_line(line), strict=True))
        assert format_line(row, ntokens=ntok) == line  # the reference writer gives the same text back
        scan += row["client_ip"] in s.scanners
    share = PROFILES[profile].scan_share
    assert 0.5 * share <= scan / len(lines) <= 2.5 * share  # scanners' share of a day, bursts included


def _batch(seed: int = 2, profile: str = "hosp") -> tuple[World, Plan, list]:
    world = World(seed, PROFILES[profile])
    plan = Plan(world, seed, datetime(2026, 11, 16, tzinfo=UTC), 288, None, 20000)
    jobs = []
    for job in file_jobs(world, plan, seed, 288):
        jobs.append(job)
        if sum(j.n for j in jobs) >= 3000:
            return world, plan, jobs
    raise AssertionError("no batch")  # pragma: no cover


def test_named_columns_land_in_the_schema_column_of_their_name():
    world, plan, jobs = _batch()
    r = simulate(world, plan, jobs)
    trand = ["0" * 24] * r.n
    cols = _columns(world, r, Clock(), trand)
    assert set(cols) == set(SLOT_NAMES)  # every slot filled, nothing else
    segments = line_segments(world.elb)
    templates = {ip: (line_template(world.elb, ip), line_template(world.elb, ip, 34, False)) for ip in world.nodes}
    lines = [ln for body in batch_lines(world, plan, jobs, segments, templates, 34, Clock()) for ln in body]
    whole = [n for n in SLOT_NAMES if "__" not in n]  # slots that are a whole column
    checked = 0
    for i, line in enumerate(lines):
        if r.is_scan[i]:
            continue  # rebuilt one by one by generate.scanners
        row = dict(zip(ACCESS.names, parse_line(line), strict=True))
        for name in whole:
            text, value = cols[name][i], row[name]
            kind = ACCESS.column(name).type
            if kind == "double":
                assert (value == -1.0 and text == "-1") or abs(value - float(text)) < 1e-9, (name, text, value)
            elif kind in ("int", "bigint"):
                assert value == int(text), (name, text, value)
            else:
                assert value == text, (name, text, value)
        assert row["time"].startswith(cols["time__sec"][i] + ".")
        assert row["request_url"] == cols["request_url__base"][i] + cols["request_url__path"][i]
        assert row["ip_address"] == jobs[int(np.searchsorted(r.starts, i, side="right")) - 1].ip
        checked += 1
    assert checked > 2500


def test_slots_are_schema_columns_and_segments_place_the_node():
    names = set(ACCESS.names)
    assert all(n.split("__")[0] in names for n in (*SLOT_NAMES, NODE_SLOT))
    assert NDRAWS == 20  # the width of each file's draw: changing it changes every line
    for era in ERAS:
        seg = line_segments("app/x/1", era)
        assert len(seg.lits) == len(seg.names) + 1
        assert seg.names[: len(seg.names) - (NODE_SLOT in seg.names)] == list(SLOT_NAMES[: len(seg.names)])
        has_node = min(era, len(ACCESS.tokens)) >= [t.columns[0].name for t in ACCESS.tokens].index("ip_address") + 1
        assert (NODE_SLOT in seg.names) == has_node


#: The package's modules in dependency order: each may import only those before it.
LAYERS = ("world", "plan", "template", "traffic", "scanners", "render", "writer", "run")


def _imports(mod: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{mod}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("albstats.generate"):
            out.add(node.module.removeprefix("albstats.generate").lstrip("."))
    return out


def test_modules_depend_one_way_and_stay_small():
    on_disk = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert on_disk == set(LAYERS)
    for i, mod in enumerate(LAYERS):
        assert _imports(mod) <= set(LAYERS[:i]), f"{mod} imports a module after it: {_imports(mod)}"
    for p in PACKAGE.glob("*.py"):
        assert len(p.read_text().splitlines()) < 500, f"{p.name} is past ~500 lines: split it along a seam"
