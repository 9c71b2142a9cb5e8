"""Datasets for the lessons: MNIST (full when reachable, bundled subset offline),
toy 1-D/2-D distributions, and tf.data pipelines.

Every image loader returns float32 images in [-1, 1] with shape (N, 28, 28, 1)
and int64 labels of shape (N,).
"""

import contextlib
import io
import os
from pathlib import Path

import numpy as np

BUNDLED_FILE = "mnist_5k.npz"
DATA_DIR_ENV = "GAN_LESSONS_DATA_DIR"
SOURCES = ("auto", "full", "bundled")
SPLITS = ("train", "test", "all")
BUNDLED_TEST_PER_CLASS = 100
"""The bundled 5,000 digits are split into 4,000 for training and 1,000 (100 per
class) held out for measuring, with a fixed permutation."""


class DatasetUnavailable(RuntimeError):
    """A dataset could not be loaded; the message says what to do."""


def _data_dirs():
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        yield Path(env)
    here = Path(__file__).resolve().parent
    yield here.parent / "data"  # a source checkout or editable install
    import sys

    yield Path(sys.prefix) / "share" / "gan-lessons" / "data"  # a wheel install


def bundled_path():
    """Path of the bundled MNIST subset, or a clear error when it is missing."""
    for folder in _data_dirs():
        candidate = folder / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    raise DatasetUnavailable(
        f"The bundled digits ({BUNDLED_FILE}) were not found: clone the repository and "
        f"install it with 'pip install -e .', or set {DATA_DIR_ENV} to the folder "
        "that holds the file."
    )


def to_unit_range(images_uint8):
    """uint8 images (N, 28, 28) in 0..255 -> float32 (N, 28, 28, 1) in [-1, 1]."""
    x = np.asarray(images_uint8, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    return x / 127.5 - 1.0


def to_uint8(images):
    """Images in [-1, 1] -> uint8 in 0..255 (for saving and display)."""
    x = (np.asarray(images, dtype=np.float32) + 1.0) * 127.5
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _bundled_split(split):
    raw = np.load(bundled_path())
    x, y = raw["x"], raw["y"].astype(np.int64)
    # The file is ordered by class: a fixed permutation mixes it, then the last
    # 100 of each class are held out for measuring.
    order = np.random.default_rng(20240601).permutation(len(y))
    x, y = x[order], y[order]
    test_mask = np.zeros(len(y), dtype=bool)
    for digit in range(10):
        test_mask[np.flatnonzero(y == digit)[-BUNDLED_TEST_PER_CLASS:]] = True
    if split == "train":
        return x[~test_mask], y[~test_mask]
    if split == "test":
        return x[test_mask], y[test_mask]
    return x, y


def _keras_dataset(name):
    """Ask Keras for a dataset (its cache first, then the network), silently."""
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return loader.load_data()


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def load_mnist(split="train", source="auto", limit=None, verbose=True):
    """MNIST digits as (images, labels).

    Args:
        split: "train", "test" (held out, for measuring) or "all".
        source: "auto" uses the full MNIST when Keras can get it (from its cache or
            the network) and the bundled 5,000-digit subset otherwise; "bundled"
            forces the subset (tests use it); "full" insists on the full set.
        limit: keep at most this many images (a class-balanced prefix).
        verbose: print one line saying which data was used.

    Returns:
        images: float32 (N, 28, 28, 1) in [-1, 1]; labels: int64 (N,).
    """
    _check_choice("split", split, SPLITS)
    _check_choice("source", source, SOURCES)
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit <= 0):
        raise ValueError(f"limit must be a positive integer or None; got {limit!r}.")

    used = None
    if source in ("auto", "full"):
        try:
            (x_tr, y_tr), (x_te, y_te) = _keras_dataset("mnist")
            parts = {"train": [(x_tr, y_tr)], "test": [(x_te, y_te)],
                     "all": [(x_tr, y_tr), (x_te, y_te)]}[split]
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts]).astype(np.int64)
            used = f"full MNIST ({split} split, {len(y):,} digits)"
        except Exception as exc:
            if source == "full":
                raise DatasetUnavailable(
                    "The full MNIST could not be downloaded (no network?) and is not in "
                    "Keras's cache (~/.keras/datasets/mnist.npz); use source='auto' or "
                    "'bundled' to train on the bundled 5,000 digits."
                ) from exc
    if used is None:
        x, y = _bundled_split(split)
        used = f"bundled MNIST subset ({split} split, {len(y):,} digits; full MNIST not reachable)"
        if source == "bundled":
            used = f"bundled MNIST subset ({split} split, {len(y):,} digits)"

    if limit is not None and limit < len(y):
        x, y = _balanced_prefix(x, y, limit)
        used += f", limited to {len(y):,}"
    if verbose:
        print(f"Using {used}.")
    return to_unit_range(x), y


def _balanced_prefix(x, y, limit):
    """The first ``limit`` items taken round-robin over classes (keeps classes balanced)."""
    per_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    rank = np.empty(len(y), dtype=np.int64)
    for idx in per_class:
        rank[idx] = np.arange(len(idx))
    order = np.lexsort((np.arange(len(y)), rank))[:limit]
    order.sort()
    return x[order], y[order]


def load_fashion_mnist(split="train", limit=None, verbose=True):
    """Fashion-MNIST (needs Keras's cache or the network; nothing is bundled)."""
    _check_choice("split", split, SPLITS)
    try:
        (x_tr, y_tr), (x_te, y_te) = _keras_dataset("fashion_mnist")
    except Exception as exc:
        raise DatasetUnavailable(
            "Fashion-MNIST could not be downloaded (no network?) and is not bundled; "
            "run this lesson with DATASET = 'mnist', or once online so Keras caches it."
        ) from exc
    parts = {"train": [(x_tr, y_tr)], "test": [(x_te, y_te)], "all": [(x_tr, y_tr), (x_te, y_te)]}[split]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if limit is not None and limit < len(y):
        x, y = _balanced_prefix(x, y, limit)
    if verbose:
        print(f"Using Fashion-MNIST ({split} split, {len(y):,} images).")
    return to_unit_range(x), y


def load_dataset(name="mnist", split="train", limit=None, verbose=True):
    """Load an image dataset by name: "mnist" or "fashion_mnist"."""
    _check_choice("name", name, ("mnist", "fashion_mnist"))
    if name == "mnist":
        return load_mnist(split=split, limit=limit, verbose=verbose)
    return load_fashion_mnist(split=split, limit=limit, verbose=verbose)


def make_dataset(images, labels=None, batch_size=64, shuffle=True, seed=0, drop_remainder=True, passes=1):
    """A tf.data pipeline: shuffle (seeded, reshuffled each epoch), batch, prefetch.

    Yields image batches, or (image, label) batches when labels are given. Partial
    last batches are dropped by default so every step sees a full batch.

    ``passes`` shuffled passes over the data make one epoch (each pass in its own
    order). A WGAN trainer with ``n_critic`` critic steps takes ``n_critic`` batches of
    real images per step as one stacked batch: ``batch_size=n_critic * m`` with
    ``passes=n_critic`` gives every critic step m fresh images and keeps the number of
    steps per epoch that batches of m would give.
    """
    import tensorflow as tf

    n = len(images)
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes <= 0:
        raise ValueError(f"passes must be a positive integer; got {passes!r}.")
    if batch_size > n * passes:
        raise ValueError(
            f"batch_size ({batch_size}) is larger than the data ({n} images"
            + (f" x {passes} passes" if passes > 1 else "")
            + f"); use a batch size of at most {n * passes}."
        )
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} items but images has {n}; they must match.")
    items = images if labels is None else (images, labels)
    ds = tf.data.Dataset.from_tensor_slices(items)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if passes > 1:
        ds = ds.repeat(passes)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- toys


def gaussian_ring(n, modes=8, radius=2.0, std=0.02, seed=0):
    """Samples from ``modes`` Gaussians evenly spaced on a circle.

    Returns (points (n, 2) float32, centres (modes, 2) float32).
    """
    if modes <= 0:
        raise ValueError(f"modes must be a positive integer; got {modes!r}.")
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    which = rng.integers(0, modes, size=n)
    points = centres[which] + rng.normal(0.0, std, size=(n, 2))
    return points.astype(np.float32), centres.astype(np.float32)


def gaussian_grid(n, side=5, spacing=2.0, std=0.02, seed=0):
    """Samples from a side x side grid of Gaussians centred on the origin.

    Returns (points (n, 2) float32, centres (side*side, 2) float32).
    """
    if side <= 0:
        raise ValueError(f"side must be a positive integer; got {side!r}.")
    rng = np.random.default_rng(seed)
    ticks = (np.arange(side) - (side - 1) / 2) * spacing
    centres = np.array([(a, b) for a in ticks for b in ticks])
    which = rng.integers(0, len(centres), size=n)
    points = centres[which] + rng.normal(0.0, std, size=(n, 2))
    return points.astype(np.float32), centres.astype(np.float32)
