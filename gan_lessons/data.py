"""Datasets for the lessons: MNIST (the bundled subset; the full set on request), toy 2-D distributions, and
the tf.data pipelines that feed ``fit``. Image loaders return float32 (N, 28, 28, 1) in [-1, 1], int64 labels (N,).
"""

import contextlib
import io
import os
import reprlib
from importlib import resources
from pathlib import Path

import numpy as np

from gan_lessons import checks, runtime

BUNDLED_FILE = "mnist_5k.npz"
DATA_DIR_ENV = "GAN_LESSONS_DATA_DIR"
SOURCES = ("auto", "full", "bundled")
SPLITS = ("train", "test", "all")
BUNDLED_TEST_PER_CLASS = 100  # of the bundled 5,000 digits, held out for measuring (4,000 train)


class DatasetUnavailable(RuntimeError):
    """A dataset could not be loaded; the message says what to do."""


def bundled_path(name=BUNDLED_FILE):
    """Path of a bundled file (package data in ``gan_lessons/bundled``, or in ``GAN_LESSONS_DATA_DIR`` when that is
    set), or a clear error when it is missing."""
    folder = os.environ.get(DATA_DIR_ENV)
    candidate = Path(folder) / name if folder else Path(str(resources.files("gan_lessons") / "bundled" / name))
    if candidate.is_file():
        return candidate
    raise DatasetUnavailable(f"The bundled file {name} was not found at {candidate}: reinstall gan-lessons "
                             f"(pip install gan-lessons, or 'pip install -e .' in a clone), or set {DATA_DIR_ENV} to "
                             "the folder that holds it.")


def to_unit_range(images_uint8):
    """uint8 images (N, 28, 28) in 0..255 -> float32 (N, 28, 28, 1) in [-1, 1]."""
    x = checks.array("images_uint8", images_uint8, "(N, H, W)", "(N, H, W, C)")
    if x.ndim == 3:
        x = x[..., None]
    return x / 127.5 - 1.0


def _bundled_split(split):
    raw = np.load(bundled_path())
    x, y = raw["x"], raw["y"].astype(np.int64)
    # The file is ordered by class: a fixed permutation mixes it, then the last 100 of each class are held out.
    order = np.random.default_rng(20240601).permutation(len(y))
    x, y = x[order], y[order]
    test_mask = np.zeros(len(y), dtype=bool)
    for digit in range(10):
        test_mask[np.flatnonzero(y == digit)[-BUNDLED_TEST_PER_CLASS:]] = True
    keep = {"train": ~test_mask, "test": test_mask, "all": slice(None)}[split]
    return x[keep], y[keep]


def _keras_split(name, split):
    """A split of a Keras dataset (from Keras's cache or the network), silently."""
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train, test = loader.load_data()
    parts = {"train": [train], "test": [test], "all": [train, test]}[split]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64)


def mnist_source():
    """What ``source="auto"`` uses: "full" with ``GAN_LESSONS_MORE=1`` when Keras can get it, else "bundled"."""
    if not runtime.more():
        return "bundled"
    try:
        _keras_split("mnist", "test")
        return "full"
    except Exception:
        return "bundled"


def load_mnist(split="train", source="auto", limit=None, verbose=True):
    """MNIST digits of ``split`` ("train", "test": held out for measuring, or "all") as (images, labels).
    ``source`` "auto": the bundled 5,000 digits (the lessons' measured data), or with ``GAN_LESSONS_MORE=1`` the full
    MNIST when Keras can get it (cache or network); "bundled" forces the subset; "full" insists on the full set.
    ``limit``: at most this many (a class-balanced prefix). ``verbose``: print one line saying which was used."""
    checks.choice("split", split, SPLITS)
    checks.choice("source", source, SOURCES)
    if limit is not None:
        checks.count("limit", limit)

    used = None
    if source == "full" or (source == "auto" and runtime.more()):
        try:
            x, y = _keras_split("mnist", split)
            used = f"full MNIST ({split} split, {len(y):,} digits)"
        except Exception as exc:
            if source == "full":
                raise DatasetUnavailable("The full MNIST could not be downloaded (no network?) and is not in Keras's "
                                         "cache (~/.keras/datasets/mnist.npz); connect once so that Keras caches it, "
                                         "or use the bundled 5,000 digits (source='auto' or 'bundled').") from exc
    if used is None:
        x, y = _bundled_split(split)
        note = "; full MNIST not reachable" if source == "auto" and runtime.more() else ""
        used = f"bundled MNIST subset ({split} split, {len(y):,} digits{note})"

    if limit is not None and limit < len(y):
        x, y = balanced(x, y, limit)
        used += f", limited to {len(y):,}"
    if verbose:
        print(f"Using {used}.")
    return to_unit_range(x), y


def balanced(x, y, limit):
    """At most ``limit`` items, taken round-robin over the classes (keeps them balanced)."""
    if checks.count("limit", limit) >= _size("y", y, _size("x", x)):
        return x, y
    per_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    rank = np.empty(len(y), dtype=np.int64)
    for idx in per_class:
        rank[idx] = np.arange(len(idx))
    order = np.lexsort((np.arange(len(y)), rank))[:limit]
    order.sort()
    return x[order], y[order]


def load_fashion_mnist(split="train", limit=None, verbose=True):
    """Fashion-MNIST (needs Keras's cache or the network; nothing is bundled)."""
    checks.choice("split", split, SPLITS)
    limit = None if limit is None else checks.count("limit", limit)
    try:
        x, y = _keras_split("fashion_mnist", split)
    except Exception as exc:
        raise DatasetUnavailable("Fashion-MNIST could not be downloaded (no network?) and is not bundled; "
                                 "run this lesson with DATASET = 'mnist', or once online so Keras caches it.") from exc
    if limit is not None:
        x, y = balanced(x, y, limit)
    if verbose:
        print(f"Using Fashion-MNIST ({split} split, {len(y):,} images).")
    return to_unit_range(x), y


def load_dataset(name="mnist", split="train", limit=None, verbose=True):
    """Load an image dataset by name: "mnist" or "fashion_mnist"."""
    loaders = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist}
    return loaders[checks.choice("name", name, tuple(loaders))](split=split, limit=limit, verbose=verbose)


def _size(name, value, match=None):
    """The number of items of an array (one sentence when it is empty, no array, or not ``match`` long)."""
    sized = hasattr(value, "__len__") and not isinstance(value, str)
    if not sized or not len(value) or match not in (None, len(value)):
        need = "a non-empty array" if match is None else f"an array of {match} items, one per image"
        got = f"{len(value)} item(s)" if sized else reprlib.repr(value)
        raise checks.BadArgument(f"{name} must be {need}; got {got}.")
    return len(value)


def make_dataset(images, labels=None, batch_size=64, seed=0, per_step=None):
    """A tf.data pipeline for ``fit`` and the steps of one epoch, ``len(images) // batch_size``:
    ``dataset, steps = make_dataset(x); model.fit(dataset, epochs=E, steps_per_epoch=steps)``. Shuffled (seeded)
    and reshuffled each pass, full batches only, of images or (images, labels); endless, so that ``fit`` reads
    it through one iterator (a new one each epoch can stall a CPU for seconds). ``per_step=k`` stacks k batches
    into a step, shape (k, batch_size, ...), for a trainer that takes k steps on real data per training step
    (a WGAN's critic); an epoch then reads the data k times."""
    import tensorflow as tf

    n, seed = _size("images", images), checks.seed("seed", seed)
    batch_size = checks.count("batch_size", batch_size)
    if per_step is not None:
        per_step = checks.count("per_step", per_step)
    if batch_size > n:
        raise checks.BadArgument(f"batch_size ({batch_size}) is larger than the data ({n} images); "
                                 f"use at most {n}.")
    if labels is not None:
        _size("labels", labels, n)
    ds = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels))
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size, drop_remainder=True)
    if per_step is not None:
        ds = ds.batch(per_step, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE), n // batch_size


def make_unpaired_dataset(images_a, images_b, batch_size=32, seed=0):
    """Like ``make_dataset`` for two domains, each shuffled on its own: (a_batch, b_batch) with no pairing
    between them. One epoch is min(len(a), len(b)) // batch_size steps."""
    import tensorflow as tf

    n, seed = min(_size("images_a", images_a), _size("images_b", images_b)), checks.seed("seed", seed)
    batch_size = checks.count("batch_size", batch_size)
    if batch_size > n:
        raise checks.BadArgument(f"batch_size ({batch_size}) is larger than the smaller domain ({n} images); "
                                 f"use at most {n}.")
    ds_a = tf.data.Dataset.from_tensor_slices(images_a[:n]).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds_b = tf.data.Dataset.from_tensor_slices(images_b[:n]).shuffle(n, seed=seed + 1, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip((ds_a.repeat(), ds_b.repeat())).batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE), n // batch_size


# --------------------------------------------------------------------------- toys


def _mixture(centres, n, std, seed):
    """n points (float32), each from a Gaussian of standard deviation ``std`` around one of
    the ``centres`` drawn at random, and the centres (float32)."""
    n, std = checks.count("n", n), checks.number("std", std, 0.0)
    rng = np.random.default_rng(checks.seed("seed", seed))
    points = centres[rng.integers(0, len(centres), size=n)] + rng.normal(0.0, std, size=(n, 2))
    return points.astype(np.float32), centres.astype(np.float32)


def gaussian_ring(n, modes=8, radius=2.0, std=0.02, seed=0):
    """Samples from ``modes`` Gaussians evenly spaced on a circle: (points (n, 2), centres (modes, 2)), float32."""
    modes, radius = checks.count("modes", modes), checks.number("radius", radius, 0.0, low_open=True)
    angles = 2 * np.pi * np.arange(modes) / modes
    return _mixture(np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1), n, std, seed)


def gaussian_grid(n, side=5, spacing=2.0, std=0.02, seed=0):
    """Samples from a side x side grid of Gaussians around the origin: (points (n, 2), centres), float32."""
    side, spacing = checks.count("side", side), checks.number("spacing", spacing, 0.0, low_open=True)
    ticks = (np.arange(side) - (side - 1) / 2) * spacing
    return _mixture(np.array([(a, b) for a in ticks for b in ticks]), n, std, seed)


def s_curve(n, noise=0.05, seed=0):
    """Points (n, 2) float32 along an S-shaped curve, (sin u, sign(u) (cos u - 1)) for u uniform in
    [-3 pi / 2, 3 pi / 2], plus Gaussian ``noise``: x1 in [-1, 1], x2 in [-2, 2], one shape with two bends."""
    n, seed, noise = checks.count("n", n), checks.seed("seed", seed), checks.number("noise", noise, 0.0)
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.5 * np.pi, 1.5 * np.pi, size=n)
    points = np.stack([np.sin(u), np.sign(u) * (np.cos(u) - 1)], axis=1)
    return (points + rng.normal(0.0, noise, size=(n, 2))).astype(np.float32)
