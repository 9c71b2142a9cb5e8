"""Unpaired image domains for CycleGAN (lesson 05).

Domain A is plain MNIST: a white digit on black. Domain B is the same kind of
digit drawn in another style by ``style``: a hollow letter with a dark outline
and a grey drop shadow, on light paper. ``style`` is a fixed, deterministic
function, so for any A image the lesson knows the "right" B answer, even
though the model never sees such pairs.

Both domains have the same shape, (N, 28, 28, 1) float32 in [-1, 1]: grey in,
grey out. One shape for both keeps the identity loss (G_ab fed a B image should
return it unchanged) well defined, and lets the project's classifier, which
reads grey digits, judge every translation back to A.

Unpaired means disjoint: ``split_unpaired`` sends every source digit to exactly
one domain, so no A image has its B twin among the training images.

``load_photo_domains`` loads a real unpaired photo set (horse2zebra and its
siblings) through tensorflow-datasets when that package and a network are
available; otherwise it raises ``DatasetUnavailable`` with one sentence.
"""

from dataclasses import dataclass

import numpy as np

from gan_lessons import data
from gan_lessons.data import DatasetUnavailable

PAPER = 0.92
"""Brightness of the paper (0 black, 1 white) in domain B."""
INK = 0.08
"""Brightness of the outline ink."""
SHADOW = 0.62
"""Brightness of the drop shadow."""
OUTLINE_RADIUS = 2
"""How far (pixels) the outline reaches beyond the original stroke."""
SHADOW_OFFSET = (2, 2)
"""Shadow shift (down, right) in pixels."""
SPLIT_SEED = 5
"""Seed of the A/B split: fixed, so the notebook and the command line use the same domains."""

PHOTO_SETS = ("horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo")


def _disk_offsets(radius):
    """Offsets (dy, dx) of a round brush: the square minus its far corners."""
    r = int(radius)
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dy * dy + dx * dx <= r * r + 1]


def _shift(x, dy, dx):
    """Shift images (N, H, W) by (dy, dx) pixels, filling with zeros (no wrap-around)."""
    n, h, w = x.shape
    padded = np.zeros((n, h + 2 * abs(dy), w + 2 * abs(dx)), dtype=x.dtype)
    padded[:, abs(dy):abs(dy) + h, abs(dx):abs(dx) + w] = x
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + h, left:left + w]


def dilate(ink, radius=OUTLINE_RADIUS):
    """Grey-scale dilation: each pixel takes the strongest ink within ``radius`` (a round brush)."""
    out = np.zeros_like(ink)
    for dy, dx in _disk_offsets(radius):
        np.maximum(out, _shift(ink, dy, dx), out=out)
    return out


def style(images):
    """The A -> B style: a hollow, outlined digit with a drop shadow on light paper.

    Deterministic: the same input always gives the same output, and each image is
    styled on its own. Works on (N, 28, 28, 1) or (28, 28, 1) images in [-1, 1] and
    returns the same shape, float32 in [-1, 1].

    With ink = (x + 1) / 2 (1 on the stroke, 0 on the background):
      * thick   = ink dilated by a round brush of radius 2 (the stroke made fatter);
      * outline = thick - ink (the ring around the original stroke; the stroke itself
        stays empty, so the digit looks hollow);
      * shadow  = thick shifted 2 pixels down and right, visible only outside the letter;
      * B = paper darkened to SHADOW under the shadow, then the outline in INK on top.
    """
    x = np.asarray(images, dtype=np.float32)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 1:
        raise ValueError(f"images must have shape (N, H, W, 1) or (H, W, 1) (grey digits); got {np.shape(images)}.")
    ink = np.clip((x[..., 0] + 1.0) / 2.0, 0.0, 1.0)
    thick = dilate(ink)
    outline = np.clip(thick - ink, 0.0, 1.0)
    shadow = _shift(thick, *SHADOW_OFFSET) * (1.0 - thick)
    page = PAPER - (PAPER - SHADOW) * shadow
    page = page * (1.0 - outline) + INK * outline
    out = (2.0 * page - 1.0)[..., None].astype(np.float32)
    return out[0] if single else out


# --------------------------------------------------------------------- domains


@dataclass
class UnpairedDomains:
    """Images of two domains with no pairing between them.

    ``a``/``b``: float32 (N, H, W, C) in [-1, 1]; ``a_labels``/``b_labels``: the digit
    classes (int64, or None for photos); ``a_index``/``b_index``: which source digits
    (rows of the loaded split) each domain was made from.
    ``len()`` is the number of training pairs an epoch can draw: the smaller domain.
    """

    a: np.ndarray
    b: np.ndarray
    a_labels: np.ndarray = None
    b_labels: np.ndarray = None
    a_index: np.ndarray = None
    b_index: np.ndarray = None

    def __len__(self):
        return min(len(self.a), len(self.b))

    def arrays(self):
        """The four arrays the saved-model contract puts in test_domains.npz."""
        out = {"a": self.a, "b": self.b}
        if self.a_labels is not None:
            out["a_labels"] = self.a_labels
        if self.b_labels is not None:
            out["b_labels"] = self.b_labels
        return out


def split_unpaired(images, labels, seed=SPLIT_SEED):
    """Split digits into two disjoint halves, A (kept as they are) and B (styled).

    Within each class the digits are shuffled (seeded) and half go to each side, so
    both domains hold every class equally often and no digit appears in both.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if len(images) != len(labels):
        raise ValueError(f"labels has {len(labels)} items but images has {len(images)}; they must match.")
    if len(images) < 2:
        raise ValueError(f"images must hold at least 2 digits to split into two domains; got {len(images)}.")
    rng = np.random.default_rng(seed)
    side = np.zeros(len(labels), dtype=bool)  # True -> domain B
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        side[idx[len(idx) // 2:]] = True
    a_index = rng.permutation(np.flatnonzero(~side))
    b_index = rng.permutation(np.flatnonzero(side))
    return UnpairedDomains(a=images[a_index], b=style(images[b_index]),
                           a_labels=labels[a_index], b_labels=labels[b_index],
                           a_index=a_index, b_index=b_index)


def load_digit_domains(split="train", limit=None, source="auto", seed=SPLIT_SEED, verbose=True):
    """MNIST digits of ``split`` split into domain A (plain) and domain B (``style``).

    ``limit`` caps the digits loaded before splitting (a class-balanced prefix), so each
    domain gets about half of it. Held-out domains come from ``split="test"``.
    """
    images, labels = data.load_mnist(split, source=source, limit=limit, verbose=verbose)
    domains = split_unpaired(images, labels, seed=seed)
    if verbose:
        print(f"Domain A: {len(domains.a):,} plain digits; domain B: {len(domains.b):,} styled digits "
              "(different source digits).")
    return domains


def save_domains(domains, path):
    """Write the domains' arrays (a, a_labels, b, b_labels) to a compressed .npz file."""
    np.savez_compressed(path, **domains.arrays())


def read_domains(path):
    """Read a file written by ``save_domains`` back into ``UnpairedDomains``."""
    with np.load(path) as f:
        return UnpairedDomains(a=f["a"], b=f["b"],
                               a_labels=f["a_labels"] if "a_labels" in f else None,
                               b_labels=f["b_labels"] if "b_labels" in f else None)


def make_unpaired_dataset(domains, batch_size=32, seed=0):
    """A tf.data pipeline of (a_batch, b_batch) drawn independently from each domain.

    Each domain is shuffled on its own (different seeds), so the i-th A image in a
    batch has nothing to do with the i-th B image. One epoch has len(domains) //
    batch_size steps (full batches only).
    """
    import tensorflow as tf

    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    n = len(domains)
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) is larger than the smaller domain ({n} images); "
                         f"use a batch size of at most {n}.")
    ds_a = tf.data.Dataset.from_tensor_slices(domains.a[:n]).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds_b = tf.data.Dataset.from_tensor_slices(domains.b[:n]).shuffle(n, seed=seed + 1, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip((ds_a, ds_b))
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------- photos


def load_photo_domains(name="horse2zebra", split="train", image_size=64, limit=None, verbose=True):
    """A real unpaired photo set from tensorflow-datasets' ``cycle_gan`` collection.

    Photos are resized to ``image_size`` x ``image_size`` RGB in [-1, 1]; domain A is
    ``trainA``/``testA`` (horses) and B is ``trainB``/``testB`` (zebras). Needs the
    tensorflow-datasets package and a network connection (or its download cache);
    without them this raises ``DatasetUnavailable`` with one sentence.
    """
    if name not in PHOTO_SETS:
        raise ValueError(f"name must be one of {', '.join(map(repr, PHOTO_SETS))}; got {name!r}.")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8 or image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4, at least 8; got {image_size!r}.")
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetUnavailable(
            f"The {name} photos need the tensorflow-datasets package and a network connection "
            "(pip install tensorflow-datasets, then run again online); the digit domains work offline."
        ) from None
    import tensorflow as tf

    def take(part):
        try:
            ds = tfds.load(f"cycle_gan/{name}", split=f"{split}{part}", as_supervised=True)
        except Exception:
            raise DatasetUnavailable(
                f"The {name} photos could not be downloaded by tensorflow-datasets (no network?); "
                "the digit domains work offline."
            ) from None
        if limit is not None:
            ds = ds.take(limit)
        ds = ds.map(lambda img, _: tf.image.resize(tf.cast(img, tf.float32), (image_size, image_size)) / 127.5 - 1.0)
        return np.stack(list(ds.as_numpy_iterator())).astype(np.float32)

    domains = UnpairedDomains(a=take("A"), b=take("B"))
    if verbose:
        print(f"{name} ({split}): {len(domains.a):,} A photos and {len(domains.b):,} B photos at "
              f"{image_size}x{image_size}.")
    return domains


# ------------------------------------------------------------------ measuring


def _predict(model, images, batch_size=250):
    return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def translation_report(generator_ab, generator_ba, domains, classify=None, batch_size=250):
    """Measure a pair of digit translators on held-out domains (with labels).

    Returns a dict of floats:
      class_kept_b_to_a: share of B digits whose translation to A the classifier reads
          as the original class (a good translator is close to the classifier's own
          accuracy on plain test digits, ``classifier_accuracy_a``);
      class_kept_a_to_b_to_a: the same for the round trip A -> B -> A;
      cycle_error_a, cycle_error_b: mean |x - F(G(x))| per pixel in [-1, 1] units
          (0 is a perfect round trip; 2 is the largest possible);
      style_error: mean |G_ab(a) - style(a)|, the distance to the true B answer that
          the model never saw; ``style_error_copy`` is that of returning A unchanged,
          ``style_error_mean_b`` that of drawing the average B image, for scale.
    ``classify`` maps grey digits in [-1, 1] to class ids (default: the project's
    classifier, ``metrics.classify``).
    """
    if classify is None:
        from gan_lessons import metrics

        classify = metrics.classify
    if domains.a_labels is None or domains.b_labels is None:
        raise ValueError("domains must carry a_labels and b_labels (digit classes) to measure the class kept.")
    a, b = domains.a, domains.b
    fake_b = _predict(generator_ab, a, batch_size)
    back_a = _predict(generator_ba, fake_b, batch_size)
    fake_a = _predict(generator_ba, b, batch_size)
    back_b = _predict(generator_ab, fake_a, batch_size)
    true_b = style(a)
    return {
        "class_kept_b_to_a": float(np.mean(np.asarray(classify(fake_a)) == domains.b_labels)),
        "class_kept_a_to_b_to_a": float(np.mean(np.asarray(classify(back_a)) == domains.a_labels)),
        "classifier_accuracy_a": float(np.mean(np.asarray(classify(a)) == domains.a_labels)),
        "cycle_error_a": float(np.mean(np.abs(a - back_a))),
        "cycle_error_b": float(np.mean(np.abs(b - back_b))),
        "style_error": float(np.mean(np.abs(fake_b - true_b))),
        "style_error_copy": float(np.mean(np.abs(a - true_b))),
        "style_error_mean_b": float(np.mean(np.abs(b.mean(axis=0, keepdims=True) - true_b))),
    }
