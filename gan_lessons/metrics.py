"""Measuring generated digits: the project's MNIST classifier, FID and KID in its
feature space, label accuracy and class coverage.

Why our own classifier? The usual FID runs images through Inception-v3, trained on
ImageNet photographs; it would have to be downloaded (the lessons run offline) and it
knows little about 28x28 digits. Instead a small CNN is trained once on the MNIST
train split and cached on disk; its 128-unit penultimate layer is the feature space.

The scale (the numbers depend on this feature space, so they are measured, not
quoted; ``scale()`` computes them):

* real vs real: 1,000 train digits against 1,000 held-out test digits gives a small
  FID, ``fid_floor()``. No generator can be expected to beat it by much: it is the
  distance between two samples of the same distribution.
* uniform noise vs real gives the largest values, hundreds of times the floor.
* one digit class vs all classes (a fully collapsed generator) lands in between,
  far above the floor.

A generator is good when ``fid_ratio = fid / fid_floor`` is a small number (within a
few times the floor) and it draws all 10 classes (``classes_covered == 10``, class
entropy close to log 10 = 2.30 nats).
"""

import json
import math
import os
from pathlib import Path

import keras
import numpy as np

from gan_lessons import data as _data
from gan_lessons import runtime as _runtime

VERSION = "2"
"""Part of the cache key: change it when the classifier's recipe changes."""

CACHE_ENV = "GAN_LESSONS_CACHE"
"""Environment variable naming the cache folder (default ~/.cache/gan-lessons)."""

NUM_CLASSES = 10
FEATURE_LAYER = "features"
FEATURE_DIM = 128
MIN_SHARE = 0.02
"""A class counts as drawn when it gets at least this share of the samples."""

SOURCE = "auto"
"""Which MNIST the classifier and the real reference digits come from ("auto",
"bundled" or "full"); see ``data.load_mnist``."""

_state = {"classifier": None, "extractor": None, "data": {}, "floor": {}, "scale": {}, "info": None}


def forget():
    """Drop what this process holds in memory (classifier, digits, floors), so the
    next call reads the settings (quick mode, ``SOURCE``, cache folder) afresh."""
    _state.update(classifier=None, extractor=None, data={}, floor={}, scale={}, info=None)


# --------------------------------------------------------------------------- data


def _mnist(split):
    """MNIST split from ``SOURCE`` (loaded once per process), plus the source's name."""
    key = (SOURCE, split)
    if key not in _state["data"]:
        x, y = _data.load_mnist(split=split, source=SOURCE, verbose=False)
        # The bundled subset holds 5,000 digits; anything larger is the full MNIST.
        name = "full" if len(y) > 5000 else "bundled"
        _state["data"][key] = (x, y, name)
    return _state["data"][key]


def _balanced(x, y, n):
    """At most ``n`` items, taken round-robin over classes (classes stay balanced)."""
    if n >= len(y):
        return x, y
    return _data._balanced_prefix(x, y, n)


def reference_digits(n=1000):
    """Held-out real test digits (never trained on by G nor the classifier): the
    reference every generator is compared with. Returns (images, labels)."""
    x, y, _ = _mnist("test")
    return _balanced(x, y, _check_n("n", n))


def _check_n(name, n, minimum=2):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}; got {n!r}.")
    return int(n)


def _as_images(name, images):
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise ValueError(f"{name} must have shape (N, 28, 28, 1) or (N, 28, 28); got {np.shape(images)}.")
    if len(x) == 0:
        raise ValueError(f"{name} is empty; pass at least one image.")
    return x


# --------------------------------------------------------------------- classifier


def cache_dir():
    """Folder of the cached classifier: $GAN_LESSONS_CACHE or ~/.cache/gan-lessons."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gan-lessons")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build_classifier():
    """A small CNN: two conv blocks, a 128-unit feature layer, 10 logits.

    The random shifts and rotations are active only while training: with 4,000
    digits they stop the network from memorising stroke positions.
    """
    from keras import layers

    x = keras.Input(shape=(28, 28, 1), name="image")
    h = layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=-1.0, seed=1)(x)
    h = layers.RandomRotation(0.03, fill_mode="constant", fill_value=-1.0, seed=2)(h)
    for filters in (32, 64):
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.3, seed=3)(h)
    h = layers.Dense(FEATURE_DIM, activation="relu", name=FEATURE_LAYER)(h)
    h = layers.Dropout(0.3, seed=4)(h)
    logits = layers.Dense(NUM_CLASSES, name="logits")(h)
    return keras.Model(x, logits, name="mnist_classifier")


def _train_classifier(x, y, quick):
    keras.utils.set_random_seed(1234)  # the classifier is the same whatever the caller's seed
    model = _build_classifier()
    if quick:
        x, y = _balanced(x, y, 2000)
    epochs = 3 if quick else (5 if len(y) > 5000 else 30)
    steps = epochs * math.ceil(len(y) / 64)
    # A cosine-decayed learning rate: large steps first, fine ones at the end.
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
    return model


def _accuracy(model, x, y):
    return float(np.mean(_predict(model, x).argmax(axis=1) == y))


def _predict(model, images, batch_size=500):
    out = [np.asarray(model(images[i:i + batch_size], training=False))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out)


def load_classifier(verbose=True):
    """The project's MNIST classifier (a keras.Model, images -> 10 logits).

    Trained once on the train split and cached on disk (the key holds the data
    source, quick mode and ``VERSION``); later calls load it. The first call of a
    process prints one line saying which happened and the held-out accuracy.

    The caller's random streams end in a state that depends only on the caller's
    seed, not on whether the cache existed, so a lesson repeats exactly.
    """
    if _state["classifier"] is not None:
        return _state["classifier"]
    follow_on_seed = int(np.random.randint(0, 2**31 - 1))
    quick = _runtime.is_quick()
    x_train, y_train, source = _mnist("train")
    x_test, y_test, _ = _mnist("test")
    name = f"mnist_classifier_{source}_{'quick' if quick else 'full'}_v{VERSION}"
    path = cache_dir() / f"{name}.keras"
    meta_path = cache_dir() / f"{name}.json"
    model = None
    if path.is_file() and meta_path.is_file():
        try:
            model = keras.saving.load_model(path, compile=False)
            meta = json.loads(meta_path.read_text())
            how = "Loaded the cached"
        except Exception:  # a damaged cache file: train again
            model = None
    if model is None:
        model = _train_classifier(x_train, y_train, quick)
        meta = {"accuracy": _accuracy(model, x_test, y_test), "source": source, "quick": quick,
                "train_digits": int(len(y_train)), "version": VERSION}
        # Write to temporary names first, so a concurrent reader never sees half a file.
        tmp = path.with_name(f"{name}.{os.getpid()}.tmp.keras")
        model.save(tmp)
        os.replace(tmp, path)
        tmp_meta = meta_path.with_suffix(f".{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)
        how = "Trained the"
    keras.utils.set_random_seed(follow_on_seed)
    _state["classifier"] = model
    _state["extractor"] = keras.Model(model.input, model.get_layer(FEATURE_LAYER).output)
    _state["info"] = meta
    if verbose:
        print(f"{how} MNIST classifier ({meta['source']} data{', quick' if meta['quick'] else ''}): "
              f"{meta['accuracy']:.1%} accuracy on {len(y_test):,} held-out test digits.")
    return model


def classifier_info():
    """Facts about the loaded classifier: held-out accuracy, data source, quick flag."""
    load_classifier(verbose=False)
    return dict(_state["info"])


def features(images):
    """The classifier's 128-unit penultimate activations for images in [-1, 1]."""
    x = _as_images("images", images)
    load_classifier()
    return _predict(_state["extractor"], x).astype(np.float64)


def classify(images):
    """Digit class (0..9) the classifier sees in each image, as an int64 array."""
    x = _as_images("images", images)
    return _predict(load_classifier(), x).argmax(axis=1).astype(np.int64)


# ------------------------------------------------------------------ FID and KID


def _sqrt_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    """Frechet distance between the Gaussians N(mu_a, cov_a) and N(mu_b, cov_b):

        |mu_a - mu_b|^2 + Tr(cov_a + cov_b - 2 (cov_a^1/2 cov_b cov_a^1/2)^1/2)

    The trace term uses Tr((A B)^1/2) = Tr((A^1/2 B A^1/2)^1/2), which keeps every
    matrix symmetric, so two symmetric eigendecompositions suffice (no scipy).
    """
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = np.sum(np.sqrt(np.clip(values, 0, None)))
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * cross, 0.0))


def _stats(feats):
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _feats(name, images):
    x = _as_images(name, images)
    if len(x) < 2:
        raise ValueError(f"{name} needs at least 2 images to fit a Gaussian; got {len(x)}.")
    return features(x)


def fid(images_a, images_b):
    """Frechet Inception-style Distance in the classifier's feature space.

    Fits a Gaussian to the features of each set and returns the Frechet distance
    between them. 0 means identical statistics; see the module docstring and
    ``scale()`` for what real-vs-real and noise-vs-real give. FID depends on the
    sample size (smaller samples read higher), so compare sets of equal size.
    """
    return frechet_distance(*_stats(_feats("images_a", images_a)), *_stats(_feats("images_b", images_b)))


def _mmd2_unbiased(a, b):
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3."""
    d = a.shape[1]
    k_aa = (a @ a.T / d + 1) ** 3
    k_bb = (b @ b.T / d + 1) ** 3
    k_ab = (a @ b.T / d + 1) ** 3
    m, n = len(a), len(b)
    return ((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
            + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
            - 2 * k_ab.mean())


def kid(images_a, images_b, subsets=20, subset_size=500, seed=0):
    """Kernel Inception-style Distance: the unbiased squared MMD between the feature
    sets with a cubic polynomial kernel, averaged over random subsets.

    Unlike FID it has no bias from the sample size (its expected value for two
    samples of one distribution is 0, so small negative values happen).
    """
    _check_n("subsets", subsets, 1)
    _check_n("subset_size", subset_size, 2)
    a, b = _feats("images_a", images_a), _feats("images_b", images_b)
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [_mmd2_unbiased(a[rng.choice(len(a), size, replace=False)],
                             b[rng.choice(len(b), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values))


def fid_floor(n=1000):
    """Real vs real: FID between ``n`` MNIST train digits and ``n`` held-out test
    digits (class-balanced). What a generator that draws perfect digits of the
    training set would score. Computed once per process and size."""
    n = _check_n("n", n)
    if n not in _state["floor"]:
        x, y, _ = _mnist("train")
        train, _ = _balanced(x, y, n)
        test, _ = reference_digits(n)
        _state["floor"][n] = fid(train, test)
    return _state["floor"][n]


def scale(n=1000):
    """Measured landmarks of the FID scale at sample size ``n``, against held-out
    test digits: ``real_vs_real`` (= fid_floor), ``one_class_vs_real`` (n train
    digits that are all 1s: a collapsed generator) and ``noise_vs_real`` (uniform
    noise in [-1, 1]). Computed once per process and size."""
    n = _check_n("n", n)
    if n not in _state["scale"]:
        x, y, _ = _mnist("train")
        test, _ = reference_digits(n)
        ones = x[y == 1][:n]
        noise = np.random.default_rng(0).uniform(-1, 1, size=(len(test), 28, 28, 1)).astype(np.float32)
        _state["scale"][n] = {
            "n": len(test),
            "real_vs_real": fid_floor(n),
            "one_class_vs_real": fid(ones, test),
            "noise_vs_real": fid(noise, test),
        }
    return dict(_state["scale"][n])


# ------------------------------------------------------------ labels and classes


def label_accuracy(images, labels):
    """Share of images the classifier reads as the label they were drawn for.

    For a conditional generator asked for digit y, this says how often it obeys.
    Real test digits with their true labels give the classifier's own accuracy
    (about 0.98-0.99), the most a generator can be credited with.
    """
    x = _as_images("images", images)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"labels has {len(y)} items but images has {len(x)}; they must match.")
    return float(np.mean(classify(x) == y))


def class_coverage(images, min_share=MIN_SHARE):
    """Which digit classes a set of images covers, according to the classifier.

    Returns a dict: ``classes_covered`` (classes with at least ``min_share`` of the
    images; 10 is full coverage, 1 is total mode collapse), ``entropy`` of the class
    histogram in nats (log 10 = 2.303 when all classes are equally frequent, 0 for
    one class) and ``histogram`` (counts per class).
    """
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1]; got {min_share!r}.")
    predicted = classify(images)
    counts = np.bincount(predicted, minlength=NUM_CLASSES)
    p = counts / counts.sum()
    nonzero = p[p > 0]
    return {
        "classes_covered": int(np.sum(p >= min_share)),
        "entropy": float(-(nonzero * np.log(nonzero)).sum()) + 0.0,  # + 0.0 turns -0.0 into 0.0
        "histogram": counts.tolist(),
    }


# ------------------------------------------------------------------- generators


def _is_conditional(generator):
    return len(generator.inputs) == 2


def generator_inputs(generator, n, seed=0):
    """Fixed inputs for a generator: noise (n, latent_dim) from ``seed``, and for a
    conditional generator also labels 0..9 in turn (n/10 of each when n is a
    multiple of 10). Returns the input (noise or [noise, labels]) and the labels
    (None for an unconditional generator)."""
    n = _check_n("n", n, 1)
    latent_dim = int(generator.inputs[0].shape[-1])
    noise = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)
    if _is_conditional(generator):
        labels = (np.arange(n) % NUM_CLASSES).astype(np.int32)
        return [noise, labels], labels
    return noise, None


def generate(generator, inputs, batch_size=250):
    """Run a generator on fixed inputs in batches (inference mode), as numpy."""
    if isinstance(inputs, (list, tuple)):
        n = len(inputs[0])
        parts = [generator([a[i:i + batch_size] for a in inputs], training=False)
                 for i in range(0, n, batch_size)]
    else:
        parts = [generator(inputs[i:i + batch_size], training=False) for i in range(0, len(inputs), batch_size)]
    return np.concatenate([np.asarray(p) for p in parts])


def evaluate_generator(generator, n=1000, seed=0):
    """Measure a generator on ``n`` samples against ``n`` held-out test digits.

    A conditional generator (two inputs: noise and label) is asked for each digit
    n/10 times, and its label accuracy is measured too. Returns a JSON-ready dict:
    fid, kid, fid_floor (real vs real at the same size), fid_ratio (fid / floor;
    within a few times 1 is good), classes_covered (out of 10), class_entropy
    (nats, at most log 10 = 2.303), label_accuracy (conditional only) and n.
    """
    n = _check_n("n", n, 10)
    inputs, labels = generator_inputs(generator, n, seed)
    images = generate(generator, inputs)
    reference, _ = reference_digits(n)
    floor = fid_floor(min(n, len(reference)))
    value = fid(images, reference)
    coverage = class_coverage(images)
    result = {
        "fid": value,
        "kid": kid(images, reference),
        "fid_floor": floor,
        "fid_ratio": value / floor if floor > 0 else math.inf,
        "classes_covered": coverage["classes_covered"],
        "class_entropy": coverage["entropy"],
    }
    if labels is not None:
        result["label_accuracy"] = label_accuracy(images, labels)
    result["n"] = n
    return result


class FIDMonitor(keras.callbacks.Callback):
    """FID of the trainer's generator every ``every`` epochs, on a fixed noise batch.

    The noise (and labels, for a conditional generator) is drawn once, so the curve
    shows the generator changing, not the noise. Values are kept in
    ``self.history = {"epoch": [...], "fid": [...]}`` (plus "label_accuracy" for a
    conditional generator, asked for each digit in turn); with ``log=True`` they are
    also written into the epoch's logs (put this callback before ones that read the
    logs, and use every=1 so every epoch has a value).

    Args:
        every: measure every this many epochs (and always after the last one).
        n: samples per measurement (FID reads higher for small n; 500 is a fair
            trade of time against noise, compare only values at equal n).
        seed: seed of the fixed noise.
        log: also put the value into the epoch's logs.
    """

    def __init__(self, every=1, n=500, seed=0, log=False):
        super().__init__()
        self.every = _check_n("every", every, 1)
        self.n = _check_n("n", n, 10)
        self.seed = seed
        self.log = bool(log)
        self.history = {"epoch": [], "fid": []}
        self._inputs = None
        self._labels = None

    def on_train_begin(self, logs=None):
        load_classifier()
        reference, _ = reference_digits(self.n)
        self._reference_stats = _stats(features(reference))
        self._inputs, self._labels = generator_inputs(self.model.generator, self.n, self.seed)
        if self._labels is not None:
            self.history.setdefault("label_accuracy", [])

    def measure(self):
        """FID of the generator now (and its label accuracy when conditional)."""
        images = generate(self.model.generator, self._inputs)
        value = frechet_distance(*_stats(features(images)), *self._reference_stats)
        if self._labels is None:
            return value
        return value, label_accuracy(images, self._labels)

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") == epoch + 1
        if (epoch + 1) % self.every and not last:
            return
        measured = self.measure()
        values = {"fid": measured} if self._labels is None else dict(zip(("fid", "label_accuracy"), measured))
        keep = [i for i, e in enumerate(self.history["epoch"]) if e < epoch + 1]
        self.history = {k: [v[i] for i in keep] for k, v in self.history.items()}
        self.history["epoch"].append(epoch + 1)
        for key, value in values.items():
            self.history[key].append(value)
            if self.log and logs is not None:
                logs[key] = value
