"""Argument checks shared by the builders, trainers, loaders and the command line.

Each check returns the value it accepts and otherwise raises ``BadArgument`` (a
``ValueError``) with one sentence that names the argument, its value and what is
allowed. NumPy integers count as integers; booleans do not count as numbers.
"""

import math
import numbers


class BadArgument(ValueError):
    """A bad argument to a gan_lessons function; the message is one sentence."""


def count(name, value, minimum=1):
    """An integer of at least ``minimum`` (a count, a size, a seed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise BadArgument(f"{name} must be {kind}; got {value!r}.")
    return int(value)


def counts(name, values):
    """A non-empty sequence of positive integers (layer widths)."""
    try:
        items = tuple(values)
    except TypeError:
        items = ()
    if not items or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in items):
        raise BadArgument(f"{name} must be a non-empty sequence of positive integers; got {values!r}.")
    return tuple(int(v) for v in items)


def number(name, value, low=-math.inf, high=math.inf, low_open=False, high_open=False):
    """A finite real number in the interval from ``low`` to ``high`` (open ends where asked)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        left = "(" if low_open or low == -math.inf else "["
        right = ")" if high_open or high == math.inf else "]"
        interval = f"{left}{low:g}, {high:g}{right}"
        raise BadArgument(f"{name} must be a number in {interval}; got {value!r}.")
    return float(value)


def choice(name, value, allowed):
    """One of ``allowed``."""
    if value not in allowed:
        raise BadArgument(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")
    return value
