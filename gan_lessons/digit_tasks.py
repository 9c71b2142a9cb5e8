"""Lessons 05 and 06: the digit tasks they translate between, made offline from MNIST; all images are
(N, 28, 28, 1) float32 in [-1, 1].

Lesson 05 (CycleGAN): two unpaired domains, A plain MNIST, B the same kind of digit drawn by the fixed
function ``style`` (hollow, outlined, with a drop shadow, on light paper), so the lesson knows the right B
answer for every A image although the model never sees a pair. Lesson 06 (Pix2Pix): pairs (input, digit),
for the tasks ``sketch`` (the digit's edge map) and ``complete`` (the digit with its lower half hidden).
"""

from dataclasses import dataclass

import numpy as np

from gan_lessons import checks, data

PAPER, INK, SHADOW = 0.92, 0.08, 0.62  # brightness (0 black, 1 white) of domain B's paper, outline and shadow
OUTLINE_RADIUS = 2
SHADOW_OFFSET = (2, 2)
SPLIT_SEED = 5  # fixed: the lesson and the command line use the same domains
TASKS = ("sketch", "complete")
EDGE_THRESHOLD = 2.0  # Sobel gradient magnitude (of ink in [0, 1]) above which a pixel is an edge
HIDDEN = 0.0  # the hidden pixels of the ``complete`` task: mid-grey, neither ink nor paper


def _labels(labels, n, name="labels"):
    """``labels`` as int64 (n,): whole numbers, one per image, or one sentence."""
    values = np.asarray(labels).reshape(-1)
    if values.dtype.kind not in "iu" or len(values) != n:
        raise checks.BadArgument(f"{name} must hold {n} whole numbers, one per image; got "
                                 f"{len(values)} of type {values.dtype}.")
    return values.astype(np.int64)


def _load(path, names):
    """The arrays ``names`` of the .npz file at ``path``, or one sentence naming the missing ones."""
    with np.load(path) as archive:
        missing = [name for name in names if name not in archive]
        if missing:
            raise checks.BadArgument(f"{path} has no array {', '.join(missing)}; it needs {', '.join(names)}.")
        return [archive[name] for name in names]


# ----------------------------------------------------------- lesson 05: the domains


def _shift(x, dy, dx):
    """Shift images (N, H, W) by (dy, dx) pixels, filling with zeros (no wrap-around)."""
    n, h, w = x.shape
    padded = np.zeros((n, h + 2 * abs(dy), w + 2 * abs(dx)), dtype=x.dtype)
    padded[:, abs(dy):abs(dy) + h, abs(dx):abs(dx) + w] = x
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + h, left:left + w]


def dilate(ink, radius=OUTLINE_RADIUS):
    """Grey-scale dilation of (N, H, W) ink: each pixel takes the strongest ink within
    ``radius`` (a round brush)."""
    ink, radius = checks.array("ink", ink, "(N, H, W)"), checks.count("radius", radius, minimum=0)
    out = np.zeros_like(ink)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius + 1:
                np.maximum(out, _shift(ink, dy, dx), out=out)
    return out


def style(images):
    """The A -> B style, image by image: (N, 28, 28, 1) or (28, 28, 1) in [-1, 1] -> the same. With ink =
    (x + 1) / 2: thick = ink dilated by radius 2; outline = thick - ink (a ring: the digit looks hollow);
    shadow = thick shifted 2 pixels down and right, outside the letter. PAPER, SHADOW, then INK on top."""
    x = checks.array("images", images, "(N, H, W, 1)", "(H, W, 1)")
    single = x.ndim == 3
    x = x[None] if single else x
    ink = np.clip((x[..., 0] + 1.0) / 2.0, 0.0, 1.0)
    thick = dilate(ink)
    outline = np.clip(thick - ink, 0.0, 1.0)
    shadow = _shift(thick, *SHADOW_OFFSET) * (1.0 - thick)
    page = (PAPER - (PAPER - SHADOW) * shadow) * (1.0 - outline) + INK * outline
    out = (2.0 * page - 1.0)[..., None].astype(np.float32)
    return out[0] if single else out


@dataclass
class UnpairedDomains:
    """Images of two unpaired domains, their digit classes, the rows of the loaded digits each was made from,
    and ``b_source``: the plain digits B was styled from, the true B -> A answer that training never sees.
    ``len()`` is the size of the smaller domain (the pairs an epoch can draw)."""

    a: np.ndarray
    b: np.ndarray
    a_labels: np.ndarray
    b_labels: np.ndarray
    a_index: np.ndarray = None
    b_index: np.ndarray = None
    b_source: np.ndarray = None

    def __post_init__(self):
        self.a, self.b = checks.array("a", self.a, "(N, H, W, 1)"), checks.array("b", self.b, "(N, H, W, 1)")
        self.a_labels = _labels(self.a_labels, len(self.a), "a_labels")
        self.b_labels = _labels(self.b_labels, len(self.b), "b_labels")

    def __len__(self):
        return min(len(self.a), len(self.b))

    def head(self, n):
        """The first ``n`` images of each domain."""
        n = checks.count("n", n)
        return UnpairedDomains(self.a[:n], self.b[:n], self.a_labels[:n], self.b_labels[:n],
                               b_source=None if self.b_source is None else self.b_source[:n])

    def save(self, path):
        """Write a, a_labels, b, b_labels (not ``b_source``) to a compressed .npz (test_domains.npz)."""
        np.savez_compressed(path, a=self.a, a_labels=self.a_labels, b=self.b, b_labels=self.b_labels)

    @classmethod
    def load(cls, path):
        a, a_labels, b, b_labels = _load(path, ("a", "a_labels", "b", "b_labels"))
        return cls(a, b, a_labels, b_labels)


def split_unpaired(images, labels, seed=SPLIT_SEED):
    """Split digits into two disjoint halves, A (kept as they are) and B (styled), half of each class on each
    side: both domains hold every class equally often, and no source digit appears in both."""
    images = checks.array("images", images, "(N, H, W, 1)")
    labels, seed = _labels(labels, len(images)), checks.seed("seed", seed)
    if len(images) < 2:
        raise checks.BadArgument(f"images must hold at least 2 digits, one for each domain; got {len(images)}.")
    rng = np.random.default_rng(seed)
    to_b = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        to_b[idx[len(idx) // 2:]] = True
    a_index, b_index = rng.permutation(np.flatnonzero(~to_b)), rng.permutation(np.flatnonzero(to_b))
    return UnpairedDomains(images[a_index], style(images[b_index]), labels[a_index], labels[b_index],
                           a_index, b_index, b_source=images[b_index])


def load_digit_domains(split="train", limit=None, source="auto", verbose=True):
    """MNIST digits of ``split`` (at most ``limit`` before splitting) as domains A and B."""
    domains = split_unpaired(*data.load_mnist(split, source=source, limit=limit, verbose=verbose))
    if verbose:
        print(f"Domain A: {len(domains.a):,} plain digits; domain B: {len(domains.b):,} styled digits "
              "(different source digits).")
    return domains


# ------------------------------------------------------------- lesson 06: the pairs


def sketch(images):
    """Edge maps of digits (N, 28, 28, 1) in [-1, 1]: white where the Sobel gradient of the
    ink is steeper than ``EDGE_THRESHOLD``, black elsewhere. Thick strokes become outlines."""
    import tensorflow as tf

    ink = (checks.array("images", images, "(N, H, W, 1)") + 1) / 2
    gradients = tf.image.sobel_edges(tf.constant(ink))  # (N, 28, 28, 1, 2): d/dy, d/dx
    magnitude = tf.sqrt(tf.reduce_sum(gradients ** 2, axis=-1)).numpy()
    return np.where(magnitude > EDGE_THRESHOLD, 1.0, -1.0).astype(np.float32)


def hide_lower_half(images):
    """Digits (N, 28, 28, 1) with rows 14-27 replaced by ``HIDDEN``: the input of the ``complete`` task."""
    x = np.array(checks.array("images", images, "(N, H, W, 1)"))
    x[:, x.shape[1] // 2:] = HIDDEN
    return x


def make_pairs(images, task="sketch"):
    """(inputs, targets) for ``task``: the targets are the digits themselves."""
    checks.choice("task", task, TASKS)
    targets = checks.array("images", images, "(N, H, W, 1)", "(N, H, W)")
    targets = targets[..., None] if targets.ndim == 3 else targets
    return (sketch(targets) if task == "sketch" else hide_lower_half(targets)), targets


def check_pairs(inputs, targets=None):
    """Inputs (and targets) as float32 (N, 28, 28, 1) in [-1, 1], or one sentence."""
    out = []
    for name, x in (("inputs", inputs), ("targets", targets)):
        if x is None:
            continue
        a = checks.array(name, x, "(N, 28, 28, 1)", "(N, 28, 28)")
        a = a[..., None] if a.ndim == 3 else a
        if not np.all(np.isfinite(a)) or a.min() < -1.0001 or a.max() > 1.0001:
            raise checks.BadArgument(f"{name} must hold finite values in [-1, 1] (scale images with "
                                     f"x / 127.5 - 1); got values from {np.nanmin(a):.3g} to {np.nanmax(a):.3g}.")
        out.append(a)
    if len(out) == 2 and len(out[0]) != len(out[1]):
        raise checks.BadArgument(f"inputs has {len(out[0])} images but targets has {len(out[1])}; they must match.")
    return out


class Pairs:
    """Paired images: ``inputs``, ``targets`` (N, 28, 28, 1) in [-1, 1] and the targets'
    digit ``labels``; saved as an .npz file with those three arrays."""

    def __init__(self, inputs, targets, labels):
        self.inputs, self.targets = check_pairs(inputs, targets)
        self.labels = _labels(labels, len(self.inputs))

    def __len__(self):
        return len(self.inputs)

    def head(self, n):
        n = checks.count("n", n)
        return Pairs(self.inputs[:n], self.targets[:n], self.labels[:n])

    def save(self, path):
        np.savez_compressed(path, inputs=self.inputs, targets=self.targets, labels=self.labels)

    @classmethod
    def load(cls, path):
        return cls(*_load(path, ("inputs", "targets", "labels")))


def load_pairs(split="train", task="sketch", limit=None, source="auto", verbose=True):
    """Paired digits of ``split`` for ``task`` as ``Pairs``."""
    checks.choice("task", task, TASKS)
    images, labels = data.load_mnist(split, source=source, limit=limit, verbose=verbose)
    return Pairs(*make_pairs(images, task), labels)
