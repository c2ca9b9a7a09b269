"""MkDocs hook: fills the reference pages from the code, so the docs cannot drift from it.

A page holds a marker such as ``<!-- generated: cli -->``; at build time the marker is replaced by
text made from the Typer app (every command's ``--help``), the headers of ``sql/*.sql``, or the
report.json key table in :mod:`albstats.render.data`. The generated text is never committed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the click tree under ``group``, in the order ``--help`` lists them.

    Duck-typed (``list_commands``) because Typer may carry its own copy of click.
    """
    ctx = group.context_class(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or getattr(cmd, "hidden", False):
            continue
        yield (*path, name)
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, (*path, name))


def cli_reference() -> str:
    """``albstats --help`` and every command's ``--help``, as the user sees them (plain text)."""
    import typer
    from typer.testing import CliRunner

    from albstats.cli import app

    env = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    runner = CliRunner()
    parts: list[str] = []
    for path in [(), *_commands(typer.main.get_command(app))]:
        result = runner.invoke(app, [*path, "--help"], env=env, prog_name="albstats")
        if result.exit_code != 0:
            raise RuntimeError(f"albstats {' '.join(path)} --help failed: {result.output}")
        title = "albstats " + " ".join(path) if path else "albstats"
        parts.append(f"## `{title.strip()}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


def query_reference() -> str:
    """One section per saved query, from its header comment."""
    from albstats import queries

    parts: list[str] = []
    for name in queries.names():
        q = queries.get(name)
        parts.append(f"## `{q.name}`\n\n{q.summary}\n")
        if q.description:
            parts.append(q.description.strip() + "\n")
        if q.params:
            parts.append("| parameter | type | meaning |\n|---|---|---|")
            parts += [f"| `{p.name}` | {p.type} | {p.doc} |" for p in q.params]
            parts.append("")
        parts.append("| column | type | meaning |\n|---|---|---|")
        parts += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in q.columns]
        parts.append(f"\nFile: `sql/{q.name}.sql`\n")
    return "\n".join(parts)


def report_json_reference() -> str:
    """The documented report.json keys (the same table the tests check against a real report)."""
    from albstats.render.data import markdown_reference

    return markdown_reference()


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "queries": query_reference,
    "report-json": report_json_reference,
}
_MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each generated-marker with the text its generator makes now."""
    os.environ.setdefault("COLUMNS", "100")
    return _MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)
