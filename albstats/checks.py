"""Checks of Python API arguments: a ValueError naming the argument and the range it accepts.

Why: the CLI parses percentages and durations into these values with its own messages, but a
notebook calls the library directly, and ``Options(slo=99.0)`` must fail there too instead of
returning an error budget of minus four million. NaN fails every range (it compares false).
"""

from __future__ import annotations

from numbers import Integral, Real


def fraction(name: str, v: object) -> float:
    """``v`` as a fraction strictly between 0 and 1, else ValueError naming ``name`` (99.0 is not 0.99)."""
    if isinstance(v, bool) or not isinstance(v, Real) or not 0.0 < v < 1.0:
        hint = (
            f" ({float(v):g} % is {float(v) / 100:g})"
            if isinstance(v, Real) and not isinstance(v, bool) and 1.0 <= v < 100.0
            else ""
        )
        raise ValueError(f"{name}={v!r}: expected a fraction between 0 and 1, exclusive{hint}")
    return float(v)


def number(name: str, v: object, lo: float, hi: float, what: str = "a number above {lo:g} and at most {hi:g}") -> float:
    """``v`` as a finite number with ``lo < v <= hi``, else ValueError naming ``name`` and the range."""
    if isinstance(v, bool) or not isinstance(v, Real) or not lo < v <= hi:  # NaN fails both sides
        raise ValueError(f"{name}={v!r}: expected {what.format(lo=lo, hi=hi)}")
    return float(v)


def whole(name: str, v: object, lo: int, hi: int) -> int:
    """``v`` as a whole number with ``lo <= v <= hi``, else ValueError naming ``name`` and the range."""
    if isinstance(v, bool) or not isinstance(v, Integral) or not lo <= v <= hi:
        raise ValueError(f"{name}={v!r}: expected a whole number from {lo:,} to {hi:,}")
    return int(v)
