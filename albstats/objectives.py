"""SLO files: per-service objectives as code, read from YAML with every mistake reported by line.

An SLO file names the services behind one load balancer (selected by host, path prefix or regex,
target group and listener), gives each its objectives (availability: 5XX-based, 460 optionally bad;
latency: "99 % under 1 s total time"), a compliance window (rolling or calendar) and the alerting
policy (multiwindow burn-rate pairs). The format follows OpenSLO v1 and Sloth where they agree;
``docs/slo.md`` has the mapping and a full example. The file is parsed into plain dataclasses here;
computing lives in :mod:`albstats.service_slo` and alerting in :mod:`albstats.check`.

Why line numbers: an SLO file is edited by hand and read by a cron job. ``albstats slo validate``
must point at the line to fix, so the YAML is composed into nodes (which carry their position) and
walked, instead of being loaded into plain dicts that forget where each value came from.

The module is about 590 lines: the file format's dataclasses and the walk that validates them are
one job (the messages name the field and line the dataclass checks), so it is not split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from albstats.errors import UsageError

API_VERSION = "albstats/v1"
KIND = "SLOFile"

#: Default alerting policy: Google SRE workbook, "Alerting on SLOs", table 5-8.
DEFAULT_PAGE = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
DEFAULT_TICKET = (("3d", "6h", 1.0),)
#: "No new log data for N minutes" fires after this long without a request (ALB delivers every 5 minutes).
DEFAULT_NO_DATA = timedelta(minutes=20)


# --- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """Which requests belong to a service; every field given must match (AND). Empty = every request."""

    host: str = ""  # Host of request_url, compared case-insensitively
    path_prefix: str = ""  # path of request_url starts with this
    path_regex: str = ""  # path of request_url matches (Trino/Java and DuckDB/RE2 common subset)
    target_group: str = ""  # target group name (targetgroup/NAME/...) or full ARN
    listener: str = ""  # listener port ("443") or PROTOCOL:PORT ("HTTPS:443")

    def params(self) -> dict[str, str]:
        """The saved query ``service_buckets``'s selection parameters (bound, never pasted into SQL)."""
        proto, _, port = self.listener.rpartition(":")
        return {
            "host": self.host.lower(),
            "path_prefix": self.path_prefix,
            "path_regex": self.path_regex,
            "target_group": self.target_group,
            "listener_port": port,
            "listener_protocol": proto.lower(),
        }

    def describe(self) -> str:
        parts = [
            f"{k} {v}"
            for k, v in (
                ("host", self.host),
                ("path prefix", self.path_prefix),
                ("path regex", self.path_regex),
                ("target group", self.target_group),
                ("listener", self.listener),
            )
            if v
        ]
        return ", ".join(parts) or "all requests"


@dataclass(frozen=True)
class Window:
    """The compliance window: rolling N days, or the calendar week (ISO, Monday) or month, in UTC."""

    rolling: timedelta | None = timedelta(days=28)
    calendar: str = ""  # "week" or "month" when not rolling

    def start(self, end: datetime) -> datetime:
        """Start of the window that ends at ``end`` (for a calendar window: the current week or month)."""
        if self.rolling is not None:
            return end - self.rolling
        e = (end - timedelta(microseconds=1)).astimezone(UTC)
        day = e.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.calendar == "week":
            return day - timedelta(days=day.weekday())
        return day.replace(day=1)

    def describe(self) -> str:
        if self.rolling is not None:
            return f"rolling {int(self.rolling.total_seconds() // 86400)}d"
        return f"calendar {self.calendar}"


@dataclass(frozen=True)
class BurnAlert:
    """One multiwindow burn-rate alert: fires when both windows burn faster than ``burn_rate``."""

    long: timedelta
    short: timedelta
    burn_rate: float
    severity: str  # "page" or "ticket"

    @property
    def name(self) -> str:
        return f"{_fmt_duration(self.long)}/{_fmt_duration(self.short)}"


@dataclass(frozen=True)
class Objective:
    """One SLO of a service: availability (bad = 5XX, plus 460 when asked) or latency (total time)."""

    name: str
    kind: str  # "availability" or "latency"
    target: float  # fraction, 0.99
    count_460: bool = False
    threshold_seconds: float | None = None  # latency only
    line: int = 0

    def describe(self) -> str:
        if self.kind == "availability":
            return f"{self.target * 100:g} % of requests without 5XX" + (" or 460" if self.count_460 else "")
        return f"{self.target * 100:g} % of requests under {self.threshold_seconds:g} s total time"


@dataclass(frozen=True)
class Service:
    name: str
    selector: Selector
    objectives: tuple[Objective, ...]
    window: Window
    alerts: tuple[BurnAlert, ...]
    description: str = ""
    line: int = 0


@dataclass(frozen=True)
class SloFile:
    services: tuple[Service, ...]
    no_data: timedelta = DEFAULT_NO_DATA
    path: str = ""

    @property
    def slos(self) -> list[tuple[Service, Objective]]:
        """Every (service, objective) pair, in file order."""
        return [(s, o) for s in self.services for o in s.objectives]


def default_alerts() -> tuple[BurnAlert, ...]:
    return tuple(BurnAlert(_dur(lg), _dur(sh), thr, "page") for lg, sh, thr in DEFAULT_PAGE) + tuple(
        BurnAlert(_dur(lg), _dur(sh), thr, "ticket") for lg, sh, thr in DEFAULT_TICKET
    )


def one_service(
    target: float, *, count_460: bool = False, latency: tuple[float, float] | None = None, name: str = "all"
) -> SloFile:
    """The single ``--slo``/``--latency-slo`` options as a one-service file covering every request."""
    objs = [Objective("availability", "availability", target, count_460)]
    if latency is not None:
        objs.append(Objective("latency", "latency", latency[1], threshold_seconds=latency[0]))
    return SloFile((Service(name, Selector(), tuple(objs), Window(), default_alerts()),))


# --- small parsers --------------------------------------------------------------------------------

_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _dur(text: str) -> timedelta:
    m = _DUR_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; use e.g. 5m, 1h, 3d or 250ms")
    return timedelta(seconds=float(m[1]) * _UNITS[m[2]])


def _fmt_duration(d: timedelta) -> str:
    s = int(d.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


# --- the YAML walk --------------------------------------------------------------------------------


class _Errors:
    """Every mistake found, as ``FILE:LINE: message``, so one run of validate lists them all."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, node: Any, msg: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.items.append(f"{self.where}:{line}: {msg}")


def _map(node: Any, errs: _Errors, what: str, allowed: set[str]) -> dict[str, tuple[Any, Any]] | None:
    """A YAML mapping as {key: (key node, value node)}; unknown keys and duplicates are reported."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        errs.add(node, f"{what} must be a mapping (key: value lines)")
        return None
    out: dict[str, tuple[Any, Any]] = {}
    for k, v in node.value:
        key = k.value if isinstance(k, yaml.ScalarNode) else None
        if key is None:
            errs.add(k, f"{what}: keys must be plain names")
            continue
        if key in out:
            errs.add(k, f"{what}: {key!r} is given twice")
            continue
        if key not in allowed:
            close = [a for a in sorted(allowed) if a.lower() == key.lower().replace("_", "")]
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(sorted(allowed))}"
            errs.add(k, f"{what}: unknown key {key!r}{hint}")
            continue
        out[key] = (k, v)
    return out


def _scalar(node: Any, errs: _Errors, what: str) -> str | None:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        errs.add(
            node, f"{what} must be a single value, not a {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}"
        )
        return None
    return str(node.value)


def _percent(node: Any, errs: _Errors, what: str) -> float | None:
    s = _scalar(node, errs, what)
    if s is None:
        return None
    try:
        v = float(s.strip().rstrip("%"))
    except ValueError:
        errs.add(node, f"{what}: {s!r} is not a percentage; write e.g. 99.9")
        return None
    if not 1.0 <= v < 100.0:
        hint = " (percent, not a fraction: 0.99 would be 0.99 %; write 99)" if 0 < v < 1 else ""
        errs.add(node, f"{what}: {s} must be a percentage from 1 to below 100{hint}")
        return None
    return round(v / 100.0, 12)


def _duration(node: Any, errs: _Errors, what: str, lo: timedelta, hi: timedelta) -> timedelta | None:
    s = _scalar(node, errs, what)
    if s is None:
        return None
    try:
        d = _dur(s)
    except ValueError as e:
        errs.add(node, f"{what}: {e}")
        return None
    if not lo <= d <= hi:
        errs.add(node, f"{what}: {s} must be between {_fmt_duration(lo)} and {_fmt_duration(hi)}")
        return None
    return d


def _bool(node: Any, errs: _Errors, what: str) -> bool | None:
    s = _scalar(node, errs, what)
    if s is None:
        return None
    if s.lower() in ("true", "yes", "on"):
        return True
    if s.lower() in ("false", "no", "off"):
        return False
    errs.add(node, f"{what}: {s!r} is not true or false")
    return None


def _window(node: Any, errs: _Errors, what: str) -> Window | None:
    """``28d`` (rolling), ``calendar week``/``calendar month``, or OpenSLO's ``{duration, isRolling}``."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        m = _map(node, errs, what, {"duration", "isRolling"})
        if m is None or "duration" not in m:
            if m is not None:
                errs.add(node, f"{what}: needs a duration (28d, 1w or 1M)")
            return None
        dur = _scalar(m["duration"][1], errs, f"{what}.duration")
        rolling = True if "isRolling" not in m else _bool(m["isRolling"][1], errs, f"{what}.isRolling")
        if dur is None or rolling is None:
            return None
        if not rolling:
            cal = {"1w": "week", "1M": "month"}.get(dur.strip())
            if cal is None:
                errs.add(m["duration"][1], f"{what}: a calendar window is 1w (ISO week) or 1M (month), not {dur!r}")
                return None
            return Window(None, cal)
        text = dur
    else:
        s = _scalar(node, errs, what)
        if s is None:
            return None
        text = s
    t = " ".join(text.lower().split())
    if t in ("calendar week", "calendar month"):
        return Window(None, t.split()[1])
    t = t.removeprefix("rolling ")
    m2 = re.fullmatch(r"(\d+)d", t)
    if not m2 or not 1 <= int(m2[1]) <= 90:
        errs.add(
            node,
            f"{what}: {text!r} is not a window; use a rolling 7d, 28d or 30d (1d to 90d), "
            "'calendar week' or 'calendar month'",
        )
        return None
    return Window(timedelta(days=int(m2[1])))


def _selector(node: Any, errs: _Errors, what: str) -> Selector | None:
    keys = {
        "host": "host",
        "pathPrefix": "path_prefix",
        "pathRegex": "path_regex",
        "targetGroup": "target_group",
        "listener": "listener",
    }
    m = _map(node, errs, what, set(keys))
    if m is None:
        return None
    vals: dict[str, str] = {}
    for k, (_, v) in m.items():
        s = _scalar(v, errs, f"{what}.{k}")
        if s is None:
            continue
        s = s.strip()
        if not s:
            errs.add(v, f"{what}.{k} is empty; leave the key out to match every request")
            continue
        if k == "pathPrefix" and not s.startswith("/"):
            errs.add(v, f"{what}.pathPrefix {s!r} must start with /")
            continue
        if k == "pathRegex":
            try:
                re.compile(s)
            except re.error as e:
                errs.add(v, f"{what}.pathRegex {s!r} is not a regular expression: {e}")
                continue
            if re.search(r"\(\?[^:]|\\[pPQEZAz]|\\[0-9]", s):
                errs.add(
                    v,
                    f"{what}.pathRegex {s!r}: use only the syntax Athena (Java) and DuckDB (RE2) share: "
                    "no lookarounds, inline flags, backreferences or \\p classes",
                )
                continue
        if k == "listener" and not re.fullmatch(r"(?:(?i:https?|h2|grpcs|wss?):)?\d{1,5}", s):
            errs.add(v, f"{what}.listener {s!r}: give the listener port (443) or PROTOCOL:PORT (HTTPS:443)")
            continue
        if k == "host" and not re.fullmatch(r"[A-Za-z0-9.-]+", s):
            errs.add(v, f"{what}.host {s!r} is not a host name (no scheme, port or path)")
            continue
        vals[keys[k]] = s
    return Selector(**vals)


def _objective(node: Any, errs: _Errors, what: str) -> Objective | None:
    m = _map(node, errs, what, {"name", "sli", "objective", "count460", "threshold", "description"})
    if m is None:
        return None
    ok = True
    for req in ("sli", "objective"):
        if req not in m:
            errs.add(
                node,
                f"{what}: needs {req!r}"
                + (" (availability or latency)" if req == "sli" else " (a percentage, e.g. 99.9)"),
            )
            ok = False
    if not ok:
        return None
    sli = _scalar(m["sli"][1], errs, f"{what}.sli")
    target = _percent(m["objective"][1], errs, f"{what}.objective")
    if sli not in ("availability", "latency"):
        if sli is not None:
            errs.add(m["sli"][1], f"{what}.sli {sli!r}: use availability or latency")
        return None
    name = sli
    if "name" in m:
        name = _scalar(m["name"][1], errs, f"{what}.name") or sli
    count_460 = False
    thr: float | None = None
    if sli == "availability":
        if "threshold" in m:
            errs.add(m["threshold"][0], f"{what}: threshold belongs to a latency objective")
        if "count460" in m:
            count_460 = bool(_bool(m["count460"][1], errs, f"{what}.count460"))
    else:
        if "count460" in m:
            errs.add(m["count460"][0], f"{what}: count460 belongs to an availability objective")
        if "threshold" not in m:
            errs.add(node, f"{what}: a latency objective needs a threshold (e.g. 1s or 300ms)")
            return None
        d = _duration(m["threshold"][1], errs, f"{what}.threshold", timedelta(milliseconds=1), timedelta(hours=1))
        if d is None:
            return None
        thr = d.total_seconds()
    if target is None:
        return None
    return Objective(name, sli, target, count_460, thr, node.start_mark.line + 1)


def _alerts(node: Any, errs: _Errors, what: str) -> tuple[tuple[BurnAlert, ...], timedelta | None] | None:
    import yaml

    m = _map(node, errs, what, {"page", "ticket", "noData"})
    if m is None:
        return None
    out: list[BurnAlert] = []
    no_data = None
    if "noData" in m:
        no_data = _duration(m["noData"][1], errs, f"{what}.noData", timedelta(minutes=5), timedelta(days=2))
    for sev in ("page", "ticket"):
        if sev not in m:
            out += [a for a in default_alerts() if a.severity == sev]
            continue
        seq = m[sev][1]
        if not isinstance(seq, yaml.SequenceNode):
            errs.add(seq, f"{what}.{sev} must be a list of {{long, short, burnRate}} (or [] for none)")
            continue
        for i, item in enumerate(seq.value):
            w = f"{what}.{sev}[{i}]"
            im = _map(item, errs, w, {"long", "short", "burnRate"})
            if im is None:
                continue
            missing = [k for k in ("long", "short", "burnRate") if k not in im]
            if missing:
                errs.add(item, f"{w}: needs {', '.join(missing)}")
                continue
            lg = _duration(im["long"][1], errs, f"{w}.long", timedelta(minutes=5), timedelta(days=30))
            sh = _duration(im["short"][1], errs, f"{w}.short", timedelta(minutes=5), timedelta(days=30))
            br_s = _scalar(im["burnRate"][1], errs, f"{w}.burnRate")
            try:
                br = float(br_s) if br_s is not None else None
            except ValueError:
                errs.add(im["burnRate"][1], f"{w}.burnRate {br_s!r} is not a number")
                br = None
            if br is not None and not 0 < br <= 1000:
                errs.add(im["burnRate"][1], f"{w}.burnRate {br_s} must be above 0 (and at most 1000)")
                br = None
            if lg is None or sh is None or br is None:
                continue
            bad = [x for x, d in (("long", lg), ("short", sh)) if d.total_seconds() % 300]
            if bad:
                errs.add(item, f"{w}: {' and '.join(bad)} must be whole multiples of 5m (the ALB log interval)")
                continue
            if sh >= lg:
                errs.add(im["short"][1], f"{w}: the short window must be shorter than the long one")
                continue
            out.append(BurnAlert(lg, sh, br, sev))
    return tuple(out), no_data


def _service(node: Any, errs: _Errors, what: str, defaults: dict[str, Any]) -> Service | None:
    import yaml

    m = _map(node, errs, what, {"name", "description", "selector", "window", "objectives", "alerting"})
    if m is None:
        return None
    if "name" not in m:
        errs.add(node, f"{what}: needs a name")
        return None
    name = _scalar(m["name"][1], errs, f"{what}.name")
    if name is not None and not _NAME_RE.match(name):
        errs.add(m["name"][1], f"{what}.name {name!r}: use letters, digits, '.', '_' or '-' (up to 63)")
        name = None
    what = f"service {name!r}" if name else what
    sel = _selector(m["selector"][1], errs, f"{what}: selector") if "selector" in m else Selector()
    win = _window(m["window"][1], errs, f"{what}: window") if "window" in m else defaults["window"]
    alerts = defaults["alerts"]
    if "alerting" in m:
        a = _alerts(m["alerting"][1], errs, f"{what}: alerting")
        alerts = a[0] if a else None
        if a and a[1] is not None:
            errs.add(m["alerting"][0], f"{what}: noData is set once for the file, under defaults.alerting")
    desc = _scalar(m["description"][1], errs, f"{what}.description") if "description" in m else ""
    objs: list[Objective] = []
    if "objectives" not in m:
        errs.add(node, f"{what}: needs objectives (a list; e.g. '- {{sli: availability, objective: 99.9}}')")
    else:
        seq = m["objectives"][1]
        if not isinstance(seq, yaml.SequenceNode) or not seq.value:
            errs.add(seq, f"{what}: objectives must be a non-empty list")
        else:
            for i, item in enumerate(seq.value):
                o = _objective(item, errs, f"{what}: objectives[{i}]")
                if o is not None:
                    if any(p.name == o.name for p in objs):
                        errs.add(item, f"{what}: two objectives are named {o.name!r}; give each a distinct name")
                    objs.append(o)
    if name is None or sel is None or win is None or alerts is None or not objs:
        return None
    return Service(name, sel, tuple(objs), win, alerts, desc or "", node.start_mark.line + 1)


def loads(text: str, where: str = "<slo file>") -> SloFile:
    """Parse an SLO file's text; every mistake is listed in one :class:`UsageError` (``FILE:LINE: ...``)."""
    import yaml

    errs = _Errors(where)
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise UsageError(f"{where}:{line}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{where}: not valid YAML: {e}") from None
    if root is None:
        raise UsageError(f"{where}:1: the file is empty; see docs/slo.md for an example")
    top = _map(root, errs, "the file", {"apiVersion", "kind", "defaults", "services"})
    if top is None:
        raise UsageError("\n".join(errs.items))
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in top:
            errs.add(root, f"needs '{key}: {want}' at the top")
        else:
            v = _scalar(top[key][1], errs, key)
            if v is not None and v != want:
                errs.add(top[key][1], f"{key} {v!r}: this albstats reads {key}: {want}")
    defaults: dict[str, Any] = {"window": Window(), "alerts": default_alerts()}
    no_data = DEFAULT_NO_DATA
    if "defaults" in top:
        dm = _map(top["defaults"][1], errs, "defaults", {"window", "alerting"})
        if dm:
            if "window" in dm:
                defaults["window"] = _window(dm["window"][1], errs, "defaults.window") or Window()
            if "alerting" in dm:
                a = _alerts(dm["alerting"][1], errs, "defaults.alerting")
                if a:
                    defaults["alerts"] = a[0]
                    no_data = a[1] or no_data
    services: list[Service] = []
    if "services" not in top:
        errs.add(root, "needs a 'services' list")
    else:
        seq = top["services"][1]
        if not isinstance(seq, yaml.SequenceNode) or not seq.value:
            errs.add(seq, "services must be a non-empty list ('- name: ...' items)")
        else:
            for i, item in enumerate(seq.value):
                s = _service(item, errs, f"services[{i}]", defaults)
                if s is None:
                    continue
                if any(p.name == s.name for p in services):
                    errs.add(item, f"service {s.name!r} is defined twice")
                    continue
                services.append(s)
    if errs.items:
        raise UsageError("\n".join(errs.items))
    return SloFile(tuple(services), no_data, where)


def load(path: str | Path) -> SloFile:
    """Read and parse an SLO file; an unreadable file is a one-line error naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--slo-file {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--slo-file {path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"--slo-file {path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UsageError(f"--slo-file {path}: {e.strerror}") from None
    return loads(text, str(path))
