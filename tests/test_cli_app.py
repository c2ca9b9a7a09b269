"""The CLI app as a whole: every command documented, and it starts with only the runtime dependencies."""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command
from typer.testing import CliRunner

from albstats.cli import app

#: Installed with the [dev] extra (moto[server] pulls flask and click) but not by `pip install albstats`.
DEV_ONLY = ("click", "flask", "moto", "pytest", "hypothesis", "nbclient")


def _commands(group: object, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        out.append((f"{prefix}{name}", cmd))
        out.extend(_commands(cmd, f"{prefix}{name} "))
    return out


def test_every_command_has_help():
    cmds = _commands(get_command(app))
    assert {"parse", "generate", "query", "sql", "report", "weekly", "athena", "fetch", "proxy", "compare",
            "whatif", "upstream-sim"} <= {n.split(" ")[0] for n, _ in cmds}
    for name, cmd in cmds:
        assert (getattr(cmd, "help", None) or "").strip(), f"albstats {name} has no help text"
        res = CliRunner().invoke(app, [*name.split(" "), "--help"])
        assert res.exit_code == 0, (name, res.output)


def test_cli_imports_without_dev_packages():
    # A plain `pip install albstats` has none of these; blocking them catches a stray import.
    code = ("import sys\n"
            f"for m in {DEV_ONLY!r}: sys.modules[m] = None\n"
            "from albstats.cli import app\n"
            "from typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, ['--version'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print(r.output)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("albstats ")


def test_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(app, ["no-such-command"])
    assert res.exit_code == 2

