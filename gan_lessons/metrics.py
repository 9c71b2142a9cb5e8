"""Measuring generated digits: the course's MNIST classifier, FID and KID in its feature
space, label accuracy, class coverage, and mode coverage on 2-D toy data.

Why our own classifier? The usual FID runs images through Inception-v3, trained on
ImageNet photographs: it would have to be downloaded (the lessons run offline) and it
knows little about 28x28 digits. A small CNN is trained once on the MNIST train split
and cached on disk; its 128-unit penultimate layer is the feature space. FID values
depend on that space, so the scale is measured, not quoted: ``scale()`` gives real vs
real (the floor, ``fid_floor()``), one class vs real and noise vs real at a sample size.
"""

import json
import math
import os
from pathlib import Path

import keras
import numpy as np

from gan_lessons import checks, data, runtime

VERSION = "2"
"""Part of the classifier's cache key: change it when the classifier's recipe changes."""
CACHE_ENV = "GAN_LESSONS_CACHE"
"""Environment variable naming the cache folder (default ~/.cache/gan-lessons)."""
NUM_CLASSES = 10
FEATURE_LAYER = "features"
MIN_SHARE = 0.02
"""A class counts as drawn when it gets at least this share of the samples."""
SOURCE = "auto"
"""Which MNIST the classifier and the reference digits come from; see ``data.load_mnist``."""

_state = {"classifier": None, "extractor": None, "info": None, "data": {}, "floor": {}, "scale": {}}


def forget():
    """Drop what this process holds (classifier, digits, floors), so that the next call
    reads the settings (quick mode, ``SOURCE``, cache folder) afresh."""
    _state.update(classifier=None, extractor=None, info=None, data={}, floor={}, scale={})


def _mnist(split):
    """A split of ``SOURCE``'s MNIST, loaded once per process."""
    if (SOURCE, split) not in _state["data"]:
        _state["data"][SOURCE, split] = data.load_mnist(split=split, source=SOURCE, verbose=False)
    return _state["data"][SOURCE, split]


def reference_digits(n=1000):
    """Held-out test digits, class-balanced (neither a generator nor the classifier trained
    on them): what every generator is compared with. Returns (images, labels)."""
    return data.balanced(*_mnist("test"), checks.count("n", n, minimum=2))


def _as_images(name, images, minimum=1):
    x = np.asarray(images, dtype=np.float32)
    x = x[..., None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise checks.BadArgument(f"{name} must have shape (N, 28, 28, 1) or (N, 28, 28); got {np.shape(images)}.")
    if len(x) < minimum:
        raise checks.BadArgument(f"{name} must hold at least {minimum} image(s); got {len(x)}.")
    return x


# ------------------------------------------------------------------ the classifier


def cache_dir():
    """Folder of the cached classifier: $GAN_LESSONS_CACHE or ~/.cache/gan-lessons."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gan-lessons")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _train_classifier(x, y, quick):
    """A small CNN: two conv blocks, a 128-unit feature layer, 10 logits. Random shifts
    and rotations (active only in training) keep it from memorising stroke positions."""
    from keras import layers

    keras.utils.set_random_seed(1234)  # the same classifier whatever the caller's seed
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    h = layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=-1.0, seed=1)(inputs)
    h = layers.RandomRotation(0.03, fill_mode="constant", fill_value=-1.0, seed=2)(h)
    for filters in (32, 64):
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D()(h)
    h = layers.Dropout(0.3, seed=3)(layers.Flatten()(h))
    h = layers.Dropout(0.3, seed=4)(layers.Dense(128, activation="relu", name=FEATURE_LAYER)(h))
    model = keras.Model(inputs, layers.Dense(NUM_CLASSES, name="logits")(h), name="mnist_classifier")
    if quick:
        x, y = data.balanced(x, y, 2000)
    epochs = 3 if quick else (5 if len(y) > 5000 else 30)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, epochs * math.ceil(len(y) / 64))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
    return model


def _predict(model, images, batch_size=500):
    return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def load_classifier(verbose=True, quick=None):
    """The course's MNIST classifier (images -> 10 logits), trained once and cached.

    The cache key holds the data source, quick mode (``quick``, by default the
    process's quick mode) and ``VERSION``. The first call of a process prints one line:
    trained or loaded, and the accuracy on held-out digits. The caller's random streams
    end in a state that depends only on the caller's seed, not on whether the cache
    existed, so a lesson repeats exactly.
    """
    if _state["classifier"] is not None:
        return _state["classifier"]
    follow_on_seed = int(np.random.randint(0, 2**31 - 1))
    quick = runtime.is_quick() if quick is None else bool(quick)
    (x_train, y_train), (x_test, y_test) = _mnist("train"), _mnist("test")
    source = "full" if len(y_train) > 5000 else "bundled"
    name = f"mnist_classifier_{source}_{'quick' if quick else 'full'}_v{VERSION}"
    path, meta_path = cache_dir() / f"{name}.keras", cache_dir() / f"{name}.json"
    model, how = None, "Loaded the cached"
    if path.is_file() and meta_path.is_file():
        try:
            model, meta = keras.saving.load_model(path, compile=False), json.loads(meta_path.read_text())
        except Exception:  # a damaged cache file: train again
            model = None
    if model is None:
        model, how = _train_classifier(x_train, y_train, quick), "Trained the"
        accuracy = float(np.mean(_predict(model, x_test).argmax(axis=1) == y_test))
        meta = {"accuracy": accuracy, "source": source, "quick": quick, "train_digits": len(y_train)}
        # Temporary names first, so that a concurrent reader never sees half a file.
        tmp, tmp_meta = path.with_name(f"{name}.{os.getpid()}.tmp.keras"), meta_path.with_suffix(f".{os.getpid()}")
        model.save(tmp)
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp, path)
        os.replace(tmp_meta, meta_path)
    keras.utils.set_random_seed(follow_on_seed)
    model = single_input(model)
    _state.update(classifier=model, info=meta,
                  extractor=keras.Model(model.inputs[0], model.get_layer(FEATURE_LAYER).output))
    if verbose:
        print(f"{how} MNIST classifier ({meta['source']} data{', quick' if meta['quick'] else ''}): "
              f"{meta['accuracy']:.1%} accuracy on {len(y_test):,} held-out test digits.")
    return model


def single_input(model):
    """A one-input model that takes one array: Keras 3.10 lists the input of a model loaded
    from disk and warns when that model is called with a bare array."""
    return keras.Model(model.inputs[0], model.outputs[0]) if len(model.inputs) == 1 else model


def classifier_info():
    """Facts about the classifier: held-out accuracy, data source, quick flag."""
    load_classifier(verbose=False)
    return dict(_state["info"])


def features(images):
    """The classifier's 128-unit penultimate activations for images in [-1, 1]."""
    x = _as_images("images", images)
    load_classifier()
    return _predict(_state["extractor"], x).astype(np.float64)


def classify(images):
    """The digit class (0..9) the classifier reads in each image, as int64."""
    return _predict(load_classifier(), _as_images("images", images)).argmax(axis=1).astype(np.int64)


# ------------------------------------------------------------------ FID and KID


def _sqrt_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    """Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b):

        |mu_a - mu_b|^2 + Tr(cov_a + cov_b - 2 (cov_a^1/2 cov_b cov_a^1/2)^1/2)

    using Tr((A B)^1/2) = Tr((A^1/2 B A^1/2)^1/2), which keeps every matrix symmetric.
    """
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * cross, 0.0))


def gaussian_stats(feats):
    """Mean and covariance of a set of feature vectors (N, d)."""
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid(images_a, images_b):
    """Frechet distance between Gaussians fitted to the two sets' classifier features.

    0 means identical statistics. FID reads higher for smaller samples, so compare
    sets of equal size only.
    """
    a, b = _as_images("images_a", images_a, 2), _as_images("images_b", images_b, 2)
    return frechet_distance(*gaussian_stats(features(a)), *gaussian_stats(features(b)))


def kid(images_a, images_b, subsets=20, subset_size=500, seed=0):
    """Kernel distance: the unbiased squared MMD between the two sets' classifier
    features with the kernel k(x, y) = (x.y / d + 1)^3, averaged over ``subsets``
    random subsets of ``subset_size``. Unlike FID it is unbiased: two samples of one
    distribution give 0 on average (so small negative values happen)."""
    subsets, subset_size = checks.count("subsets", subsets), checks.count("subset_size", subset_size, minimum=2)
    a = features(_as_images("images_a", images_a, 2))
    b = features(_as_images("images_b", images_b, 2))
    size, d = min(subset_size, len(a), len(b)), a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off_diagonal = size * (size - 1)
        values.append((k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / off_diagonal
                      - 2 * k_xy.mean())
    return float(np.mean(values))


def fid_floor(n=1000):
    """Real vs real: FID between ``n`` train digits and ``n`` held-out test digits, what
    perfect digits of the training set would score. Computed once per process and size."""
    n = checks.count("n", n, minimum=2)
    if n not in _state["floor"]:
        _state["floor"][n] = fid(data.balanced(*_mnist("train"), n)[0], reference_digits(n)[0])
    return _state["floor"][n]


def scale(n=1000):
    """Landmarks of the FID scale at sample size ``n``, against held-out digits:
    ``real_vs_real`` (the floor), ``one_class_vs_real`` (n train digits that are all 1s,
    a collapsed generator) and ``noise_vs_real`` (uniform noise in [-1, 1])."""
    n = checks.count("n", n, minimum=2)
    if n not in _state["scale"]:
        x, y = _mnist("train")
        test, _ = reference_digits(n)
        noise = np.random.default_rng(0).uniform(-1, 1, size=test.shape).astype(np.float32)
        _state["scale"][n] = {"n": len(test), "real_vs_real": fid_floor(n),
                              "one_class_vs_real": fid(x[y == 1][:n], test), "noise_vs_real": fid(noise, test)}
    return dict(_state["scale"][n])


# ------------------------------------------------------------ labels and classes


def label_accuracy(images, labels):
    """Share of images the classifier reads as the label they were drawn for. Real
    test digits score the classifier's own accuracy, the most a generator can get."""
    x, y = _as_images("images", images), np.asarray(labels).reshape(-1)
    if len(y) != len(x):
        raise checks.BadArgument(f"labels has {len(y)} items but images has {len(x)}; they must match.")
    return float(np.mean(classify(x) == y))


def class_coverage(images, min_share=MIN_SHARE):
    """Which digit classes a set of images covers, by the classifier's reading:
    ``classes_covered`` (classes with at least ``min_share`` of the images; 1 is total
    collapse), ``entropy`` of the class histogram in nats (log 10 = 2.303 when all are
    equally frequent) and ``histogram`` (counts per class)."""
    min_share = checks.number("min_share", min_share, 0, 1, low_open=True)
    counts = np.bincount(classify(images), minlength=NUM_CLASSES)
    p = counts / counts.sum()
    return {"classes_covered": int(np.sum(p >= min_share)),
            "entropy": float(-(p[p > 0] * np.log(p[p > 0])).sum()) + 0.0,  # + 0.0 turns -0.0 into 0.0
            "histogram": counts.tolist()}


def mode_coverage(samples, centres, std, min_share=0.2):
    """Modes of a 2-D Gaussian mixture that ``samples`` cover, as the usual benchmark
    counts them (VEEGAN, PacGAN): a sample is high-quality within 3 std of its nearest
    centre (a real sample is, 98.9 % of the time in 2-D); a mode is covered when it gets
    at least ``min_share`` of its fair count n / modes of high-quality samples.

    Returns ``modes_covered``, ``modes``, ``high_quality`` (share of samples) and
    ``counts`` (high-quality samples per mode)."""
    x, c = np.asarray(samples, dtype=np.float64), np.asarray(centres, dtype=np.float64)
    if x.ndim != 2 or not len(x) or c.ndim != 2 or c.shape[1] != x.shape[1]:
        raise checks.BadArgument(f"samples must have shape (n, d) with n >= 1 and centres (modes, d); "
                                 f"got {x.shape} and {c.shape}.")
    std = checks.number("std", std, 0, math.inf, low_open=True, high_open=True)
    min_share = checks.number("min_share", min_share, 0, 1, low_open=True)
    distances = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)
    distances[~np.all(np.isfinite(x), axis=1)] = np.inf
    nearest = distances.argmin(axis=1)
    good = distances[np.arange(len(x)), nearest] <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(c))
    return {"modes_covered": int(np.sum(counts >= min_share * len(x) / len(c))), "modes": len(c),
            "high_quality": float(good.mean()), "counts": counts.tolist()}


# -------------------------------------------------------------------- generators


def generator_inputs(generator, n, seed=0):
    """Fixed inputs for a generator: noise (n, latent_dim) from ``seed`` and, for a
    conditional generator (two inputs), labels 0, 1, ..., 9, 0, 1, ... Returns the input
    (noise or [noise, labels]) and the labels (None when unconditional)."""
    n = checks.count("n", n)
    noise = np.random.default_rng(seed).standard_normal((n, int(generator.inputs[0].shape[-1]))).astype(np.float32)
    if len(generator.inputs) == 2:
        labels = (np.arange(n) % NUM_CLASSES).astype(np.int32)
        return [noise, labels], labels
    return noise, None


def generate(generator, inputs, batch_size=250):
    """Run a network on fixed inputs (an array, or a list of arrays) in batches, in
    inference mode; returns NumPy."""
    parts = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    out = [generator([p[i:i + batch_size] for p in parts] if len(parts) > 1 else parts[0][i:i + batch_size],
                     training=False) for i in range(0, len(parts[0]), batch_size)]
    return np.concatenate([np.asarray(o) for o in out])


def evaluate_generator(generator, n=1000, seed=0):
    """Measure a generator on ``n`` samples against ``n`` held-out test digits.

    A conditional generator is asked for each digit n/10 times and its label accuracy
    is measured too. Returns a JSON-ready dict: fid, kid, fid_floor (real vs real at
    the same size), fid_ratio (fid / floor), classes_covered, class_entropy,
    label_accuracy (conditional only) and n.
    """
    n = checks.count("n", n, minimum=10)
    inputs, labels = generator_inputs(generator, n, seed)
    images = generate(generator, inputs)
    reference, _ = reference_digits(n)
    floor, value = fid_floor(min(n, len(reference))), fid(images, reference)
    coverage = class_coverage(images)
    result = {"fid": value, "kid": kid(images, reference), "fid_floor": floor,
              "fid_ratio": value / floor if floor > 0 else math.inf,
              "classes_covered": coverage["classes_covered"], "class_entropy": coverage["entropy"]}
    if labels is not None:
        result["label_accuracy"] = label_accuracy(images, labels)
    result["n"] = n
    return result
