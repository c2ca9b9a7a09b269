"""The CLI app as a whole: every command documented, and it starts with only the runtime dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from conftest import FIXTURES
from typer.main import get_command
from typer.testing import CliRunner

from albstats.cli import COMMAND_MODULES, COMMANDS, app, module_app

#: Installed with the [dev] extra (moto[server] pulls flask and click) but not by `pip install albstats`.
DEV_ONLY = ("click", "flask", "moto", "pytest", "hypothesis", "nbclient")


def _commands(group: object, prefix: str = "") -> list[tuple[str, object]]:
    """Every command under ``group`` through Click's API (the root group builds its commands on demand)."""
    out = []
    if not hasattr(group, "list_commands"):
        return out
    ctx = typer.Context(group)  # type: ignore[arg-type]
    for name in group.list_commands(ctx):  # type: ignore[attr-defined]
        cmd = group.get_command(ctx, name)  # type: ignore[attr-defined]
        assert cmd is not None, f"albstats {prefix}{name} is listed but cannot be loaded"
        out.append((f"{prefix}{name}", cmd))
        out.extend(_commands(cmd, f"{prefix}{name} "))
    return out


def test_every_command_has_help():
    cmds = _commands(get_command(app))
    assert {
        "parse",
        "generate",
        "query",
        "sql",
        "report",
        "weekly",
        "athena",
        "fetch",
        "proxy",
        "compare",
        "whatif",
        "upstream-sim",
    } <= {n.split(" ")[0] for n, _ in cmds}
    for name, cmd in cmds:
        assert (getattr(cmd, "help", None) or "").strip(), f"albstats {name} has no help text"
        res = CliRunner().invoke(app, [*name.split(" "), "--help"])
        assert res.exit_code == 0, (name, res.output)


def test_cli_imports_without_dev_packages():
    # A plain `pip install albstats` has none of these; blocking them catches a stray import.
    code = (
        "import sys\n"
        f"for m in {DEV_ONLY!r}: sys.modules[m] = None\n"
        "from albstats.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--version'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("albstats ")


def test_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(app, ["no-such-command"])
    assert res.exit_code == 2


def test_command_table_matches_the_modules():
    # COMMANDS lets `albstats NAME` import only NAME's module; it must name exactly what each registers
    registered = {}
    for module in COMMAND_MODULES:
        sub = module_app(module)
        names = [c.name or c.callback.__name__.replace("_", "-") for c in sub.registered_commands]
        names += [g.name for g in sub.registered_groups]
        registered.update(dict.fromkeys(names, module))
    assert registered == COMMANDS


def test_running_a_command_builds_only_its_module():
    code = (
        "import sys\n"
        "from albstats.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['sql', 'list'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('albstats.cli.')))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "['albstats.cli.options', 'albstats.cli.query']"


def test_the_cli_leaves_the_garbage_collector_alone() -> None:
    """No interpreter settings changed at import or by a command (issue 14): the collector's thresholds stay
    Python's and nothing is frozen, also after the console script's exit path ran."""
    code = (
        "import gc, sys\n"
        "before = gc.get_threshold()\n"
        "sys.argv = ['albstats', 'sql', 'list']\n"
        "from albstats.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('gc', gc.get_threshold() == before, gc.get_freeze_count(), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "error_rate" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == "gc True 0"


def test_unknown_command_suggests_a_close_one():
    res = CliRunner().invoke(app, ["quer"])
    assert res.exit_code == 2
    assert "Did you mean 'query'?" in res.output


@pytest.mark.integration  # slow: 5 s under load
def test_the_console_script_writes_its_output_and_exit_codes(tmp_path: Path) -> None:
    # main() (not CliRunner): output complete and flushed, files written, exit codes kept
    exe = str(Path(sys.executable).with_name("albstats"))
    day = FIXTURES / "AWSLogs/123456789012/elasticloadbalancing/us-east-2/2026/11/17"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    out = tmp_path / "r.json"
    run = [exe, "query", "error_rate", str(day), "--bucket", "1d", "--db", str(tmp_path / "c.duckdb")]
    res = subprocess.run([*run, "-f", "json", "-o", str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and rows[0]["requests"] > 0
    res = subprocess.run([*run, "-f", "csv"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.splitlines()[1].startswith(rows[0]["bucket_start"])
    assert "from cache" in res.stderr
    res = subprocess.run([exe, "query", "nope", str(day)], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 2 and "unknown query 'nope'" in res.stderr
