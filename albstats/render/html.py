"""report.html: one self-contained file that opens offline.

Styles are inline, PNGs are embedded as ``data:image/png;base64`` URIs, and nothing refers to any
other URL: no scripts, fonts, stylesheets or links. Every text (log data included) is HTML-escaped,
so a URL from the logs shows as text and never becomes a link.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from html import escape
from pathlib import Path

from albstats.render.blocks import Bullets, Document, Heading, Image, Para, Tbl

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .88em; display: block; max-width: 100%;
        overflow-x: auto; }  /* a wide table scrolls in place; the page never scrolls sideways */
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top;
         overflow-wrap: break-word; max-width: 40em; }  /* words stay whole: a narrow screen scrolls the table */
th { background: #f4f4f4; } caption { text-align: left; font-style: italic; padding: .3em 0; }
p.ok { color: #1e7e34; font-weight: bold; } p.bad { color: #b21f2d; font-weight: bold; }
figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; } img { max-width: 100%; height: auto; }
@media (max-width: 600px) { body { margin: 1em auto; padding: 0 .5em; } td, th { min-width: 4em; max-width: 22em; } }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render(doc: Document, images: Mapping[str, bytes | Path] | None = None) -> str:
    """``images``: chart name -> PNG bytes or a path to one; each is embedded."""
    images = images or {}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(doc.title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(doc.title)}</h1>",
    ]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            cls = f' class="{b.status}"' if b.status else ""
            out.append(f"<p{cls}>{escape(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in b.items) + "</ul>")
        elif isinstance(b, Tbl):
            cap = f"<caption>{escape(b.caption)}</caption>" if b.caption else ""
            if not b.rows:
                out.append(f"<table>{cap}<tr><td>(no rows)</td></tr></table>")
                continue
            head = "".join(f"<th>{escape(c)}</th>" for c in b.columns)
            body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in b.rows)
            out.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image) and b.name in images:
            src = images[b.name]
            png = src.read_bytes() if isinstance(src, Path) else src
            out.append(
                f'<figure><img alt="{escape(b.title)}" src="{data_uri(png)}">'
                f"<figcaption>{escape(b.title)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
