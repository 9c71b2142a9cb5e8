"""Argument checks shared by the builders, trainers, loaders and the command line.

Each check returns the value it accepts and otherwise raises ``BadArgument`` (a
``ValueError``) with one sentence that names the argument, its value and what is
allowed. NumPy integers count as integers; booleans do not count as numbers.
"""

import math
import numbers
import reprlib


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


def fits(generator, discriminator, generator_output=0, discriminator_input=0):
    """The generator's output (number ``generator_output``) has the shape of the
    discriminator's input (number ``discriminator_input``), batch axis aside."""
    for role, network, index, ends in (("generator", generator, generator_output, "outputs"),
                                       ("discriminator", discriminator, discriminator_input, "inputs")):
        if not hasattr(network, ends) or not 0 <= index < len(getattr(network, ends)):
            raise BadArgument(f"{role} must be a built Keras model with {ends[:-1]} number {index}; "
                              f"got {network!r:.80}.")
    made = tuple(generator.outputs[generator_output].shape[1:])
    judged = tuple(discriminator.inputs[discriminator_input].shape[1:])
    if made != judged:
        raise BadArgument(f"the generator {generator.name!r} makes images of shape {made}, but the "
                          f"discriminator {discriminator.name!r} takes inputs of shape {judged}; build them "
                          "for the same image shape.")


def seed(name, value):
    """A seed: an integer from 0 to 2**32 - 1, which NumPy, TensorFlow and Keras all accept."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < 2**32:
        raise BadArgument(f"{name} must be an integer from 0 to 2**32 - 1; got {value!r}.")
    return int(value)


def array(name, value, *shapes):
    """A non-empty float32 NumPy array of one of ``shapes``, each written as "(N, 2)": a
    number must match, a letter stands for any length of at least 1."""
    import numpy as np

    try:
        x = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        x = None
    for dims in ([d for d in shape.strip("()").replace(" ", "").split(",") if d] for shape in shapes):
        if x is not None and x.ndim == len(dims) and all(
                n >= 1 and (not d.isdigit() or n == int(d)) for d, n in zip(dims, x.shape)):
            return x
    got = f"shape {x.shape}" if x is not None and x.ndim else reprlib.repr(value)
    raise BadArgument(f"{name} must be an array of shape {' or '.join(shapes)}; got {got}.")
