"""Synthetic ALB access logs, written exactly as ALB delivers them to S3.

Why: every other part of albstats (parser benchmark, report, SLO checks, the retry-proxy
before/after) needs realistic input with known properties, reproducible from a seed and without
an AWS account. The output is a folder in the S3 key layout::

    OUT/AWSLogs/<account>/elasticloadbalancing/<region>/yyyy/mm/dd/
        <account>_elasticloadbalancing_<region>_app.<lb-name>.<lb-id>_<end>_<node-ip>_<random>.log.gz

one gzip per load-balancer node per 5-minute interval, ``yyyy/mm/dd`` being the delivery date (the
date of the interval's end, so the rows of 23:55-00:00 sit in the next day's folder), lines sorted
by ``time`` within a file, and the ``ELBAccessLogTestFile`` control object ELB writes when logging
is enabled.

The package, one job per module, each depending only on those above it:

- :mod:`~albstats.generate.world`: the simulated world (profiles, load balancer, routes, clients, scanners);
- :mod:`~albstats.generate.plan`: the traffic plan (incidents, scanner bursts, lines per file) and
  each file's random draws, named column by column;
- :mod:`~albstats.generate.template`: a line's text around its values, from ``format_line``;
- :mod:`~albstats.generate.traffic`: what happened to each request (outcome, status, bytes, timings);
- :mod:`~albstats.generate.scanners` and :mod:`~albstats.generate.render`: requests into lines;
- :mod:`~albstats.generate.writer`: the S3 key layout and the gzip writer thread;
- :mod:`~albstats.generate.run`: :func:`generate`, which checks the arguments and drives the rest.

Determinism: every file is drawn from its own random stream, derived from ``(seed, interval,
node)`` with :class:`numpy.random.SeedSequence`, and only the raw uniform doubles and bytes of PCG64
are used (their bit streams are stable across NumPy versions). Gzip members carry ``mtime=0`` and no
file name, so the same arguments give byte-identical files.

Speed: lines are built from a template that :func:`albstats.logformat.format_line` renders once
per (node, format era) with marker values, so token order, quoting and the ``-`` conventions come
from the one writer (tests check line-for-line equality with ``format_line``); the per-line work is
array draws with NumPy plus one join per line.
"""

from __future__ import annotations

from albstats.generate.plan import INTERVAL_S
from albstats.generate.run import (
    DEFAULT_START,
    MAX_LINES,
    GenerateSummary,
    Incident,
    ScanBurst,
    expected_files,
    generate,
    parse_start,
)
from albstats.generate.template import DEFAULT_ERA, ERAS, line_segments, line_template
from albstats.generate.traffic import SESSION_MEAN
from albstats.generate.world import ACCOUNT, PROFILES, REGION, Profile
from albstats.generate.writer import BATCH_ROWS, CONTROL_NAME

__all__ = [
    "ACCOUNT",
    "BATCH_ROWS",
    "CONTROL_NAME",
    "DEFAULT_ERA",
    "DEFAULT_START",
    "ERAS",
    "INTERVAL_S",
    "MAX_LINES",
    "PROFILES",
    "REGION",
    "SESSION_MEAN",
    "GenerateSummary",
    "Incident",
    "Profile",
    "ScanBurst",
    "expected_files",
    "generate",
    "line_segments",
    "line_template",
    "parse_start",
]
