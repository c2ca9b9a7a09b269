"""The blocks a report document is made of: headings, paragraphs, lists, tables, images.

Their own module so that the renderers of parts of a report (:mod:`albstats.render.readable`,
:mod:`albstats.render.slos`) and :mod:`albstats.render.document`, which puts them together, all
import them from below instead of from one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    status: str = ""  # "", "ok" or "bad": renderers may colour it


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Tbl:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Image:
    name: str  # plot name (key of the plots dict)
    title: str


@dataclass
class Document:
    title: str
    blocks: list[Any] = field(default_factory=list)
