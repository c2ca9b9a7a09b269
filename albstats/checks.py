"""Checks of Python API arguments: a ValueError naming the argument and the range it accepts.

Why: the CLI parses percentages and durations into these values with its own messages, but a
notebook calls the library directly, and ``Options(slo=99.0)`` must fail there too instead of
returning an error budget of minus four million. NaN fails every range (it compares false).
"""

from __future__ import annotations

from numbers import Integral, Real


def _real(v: object) -> float | None:
    """``v`` as a float if it is a real number (not a bool), else None."""
    return None if isinstance(v, bool) or not isinstance(v, Real) else float(v)


def fraction(name: str, v: object) -> float:
    """``v`` as a fraction strictly between 0 and 1, else ValueError naming ``name`` (99.0 is not 0.99)."""
    f = _real(v)
    if f is None or not 0.0 < f < 1.0:
        hint = f" ({f:g} % is {f / 100:g})" if f is not None and 1.0 <= f < 100.0 else ""
        raise ValueError(f"{name}={v!r}: expected a fraction between 0 and 1, exclusive{hint}")
    return f


def number(name: str, v: object, lo: float, hi: float, what: str = "a number above {lo:g} and at most {hi:g}") -> float:
    """``v`` as a finite number with ``lo < v <= hi``, else ValueError naming ``name`` and the range."""
    f = _real(v)
    if f is None or not lo < f <= hi:  # NaN fails both sides
        raise ValueError(f"{name}={v!r}: expected {what.format(lo=lo, hi=hi)}")
    return f


def whole(name: str, v: object, lo: int, hi: int) -> int:
    """``v`` as a whole number with ``lo <= v <= hi``, else ValueError naming ``name`` and the range."""
    n = None if isinstance(v, bool) or not isinstance(v, Integral) else int(v)
    if n is None or not lo <= n <= hi:
        raise ValueError(f"{name}={v!r}: expected a whole number from {lo:,} to {hi:,}")
    return n
