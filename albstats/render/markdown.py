"""report.md: the report document as GitHub-flavoured Markdown, images as relative PNG links."""

from __future__ import annotations

from albstats.render.blocks import Bullets, Document, Heading, Image, Para, Tbl


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def render(doc: Document, plots: dict[str, str] | None = None) -> str:
    plots = plots or {}
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [("**" + _esc(b.text) + "**") if b.status == "bad" else _esc(b.text), ""]
        elif isinstance(b, Bullets):
            out += [f"- {_esc(x)}" for x in b.items] + [""]
        elif isinstance(b, Tbl):
            if b.caption:
                out += [f"*{_esc(b.caption)}*", ""]
            if not b.rows:
                out += ["(no rows)", ""]
                continue
            out.append("| " + " | ".join(_esc(c) for c in b.columns) + " |")
            out.append("|" + "---|" * len(b.columns))
            out += ["| " + " | ".join(_esc(c) for c in r) + " |" for r in b.rows]
            out.append("")
        elif isinstance(b, Image) and b.name in plots:
            out += [f"![{b.title}]({plots[b.name]})", ""]
    return "\n".join(out).rstrip() + "\n"
