"""Measuring generative models (lesson 07): metrics on arrays, and the course's way of
measuring a generator with them (the shipped classifier, the bundled held-out digits).

The metrics take arrays, (N, d) features or (N, classes) probabilities, so they work in
any feature space: the classifier's (``classifier.features``), raw pixels
(``images.reshape(len(images), -1)``) or an untrained network's. Quality and variety:
``inception_score``, ``fid`` (``fid_infinity``: at infinite sample size), ``kid``,
``precision_recall``, ``density_coverage``; copying: ``copying``; labels and classes:
``label_accuracy``, ``class_coverage``; 2-D toy data: ``mode_coverage``.
"""

import math

import numpy as np

from gan_lessons import checks, classifier, data
from gan_lessons.classifier import (NUM_CLASSES, as_model, classifier_info, classify, features,  # noqa: F401
                                    load_classifier, probabilities, reference_digits, single_input)

MIN_SHARE = 0.02
"""A class counts as drawn when it gets at least this share of the samples."""


def _array(name, values, minimum=1):
    """``values`` as a finite float64 (N, d) array with N >= ``minimum``, or one sentence."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise checks.BadArgument(f"{name} must be an array of numbers; got {values!r:.80}.") from None
    if x.ndim != 2:
        raise checks.BadArgument(f"{name} must be a 2-D array (samples, features); got shape {x.shape} (flatten "
                                 "images with x.reshape(len(x), -1) or use classifier.features(x)).")
    return classifier.finite_rows(name, x, minimum, "samples")


def _pair(a, b, minimum=2, names=("features_a", "features_b")):
    a, b = _array(names[0], a, minimum), _array(names[1], b, minimum)
    if a.shape[1] != b.shape[1]:
        raise checks.BadArgument(f"{names[0]} has {a.shape[1]} features per sample but {names[1]} has "
                                 f"{b.shape[1]}; both must come from the same feature space.")
    return a, b


# --------------------------------------------------------- Inception Score, FID, KID


def inception_score(probs):
    """exp(E_x KL(p(y|x) || p(y))), p(y) the mean of the rows: 1 when every image gets the
    same class distribution, NUM_CLASSES when each is read with certainty and the classes
    are equally frequent. ``probs``: (N, classes), each row summing to 1."""
    p = _array("probs", probs)
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise checks.BadArgument("probs must hold probabilities: non-negative rows that each sum to 1 "
                                 "(apply a softmax to logits first).")
    ratio = np.divide(p, p.mean(axis=0), out=np.ones_like(p), where=p > 0)  # p(y|x) / p(y); 0 log 0 = 0
    return float(np.exp(np.sum(p * np.log(ratio), axis=1).mean()))


def _sqrt_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    """Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b):

        |mu_a - mu_b|^2 + Tr(cov_a + cov_b - 2 (cov_a^1/2 cov_b cov_a^1/2)^1/2)

    using Tr((A B)^1/2) = Tr((A^1/2 B A^1/2)^1/2), which keeps every matrix symmetric.
    """
    (cov_a, cov_b), mu_a, mu_b = _pair(cov_a, cov_b, 1, ("cov_a", "cov_b")), np.asarray(mu_a), np.asarray(mu_b)
    if not mu_a.shape == mu_b.shape == cov_a.shape[:1] == cov_a.shape[1:] == cov_b.shape[:1]:
        raise checks.BadArgument(f"mu_a, cov_a, mu_b and cov_b must have shapes (d,), (d, d), (d,) and (d, d); "
                                 f"got {mu_a.shape}, {cov_a.shape}, {mu_b.shape} and {cov_b.shape}.")
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * cross, 0.0))


def gaussian_stats(feats):
    """Mean and covariance of a set of feature vectors (N, d)."""
    feats = _array("feats", feats, 2)
    return feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False))


def fid(features_a, features_b):
    """Frechet distance between Gaussians fitted to two sets of features. 0 means equal
    statistics; it reads higher for smaller samples, so compare sets of equal size."""
    a, b = _pair(features_a, features_b)
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def fid_infinity(real_features, fake_features, sizes=None, seed=0):
    """FID at infinite sample size (Chong and Forsyth, 2020). FID_N, measured on N fakes
    against all the real features, is nearly linear in 1/N; fitting FID_N = a + b / N
    and reading a at 1/N = 0 removes the fakes' small-sample bias (not the reals').
    ``sizes``: the N used, by default 10 sizes from a fifth of the fakes to all of them.
    Returns {"fid_infinity": a, "slope": b, "sizes": [...], "fids": [...]}."""
    real, fake = _pair(real_features, fake_features, names=("real_features", "fake_features"))
    if sizes is None:
        sizes = np.unique(np.linspace(max(len(fake) // 5, 2), len(fake), 10).astype(int))
    sizes = [checks.count("each size", int(s), minimum=2) for s in sizes]
    if len(set(sizes)) < 2 or max(sizes) > len(fake):
        raise checks.BadArgument(f"sizes must hold at least 2 different sample sizes of at most {len(fake)} "
                                 f"(the number of fakes); got {sizes}.")
    rng, stats = np.random.default_rng(checks.seed("seed", seed)), gaussian_stats(real)
    fids = [frechet_distance(*stats, *gaussian_stats(fake[rng.choice(len(fake), n, replace=False)]))
            for n in sizes]
    slope, intercept = np.polyfit(1.0 / np.array(sizes), fids, 1)
    return {"fid_infinity": float(intercept), "slope": float(slope), "sizes": sizes, "fids": fids}


def kid(features_a, features_b, subsets=20, subset_size=500, seed=0):
    """Kernel Inception Distance: the unbiased squared MMD with the kernel
    k(x, y) = (x.y / d + 1)^3 on ``subsets`` random subsets of ``subset_size`` (or all
    samples, when fewer). Unbiased: two samples of one distribution give 0 on average, so
    small negative values happen. Returns (mean, standard deviation) over the subsets."""
    subsets, subset_size = checks.count("subsets", subsets), checks.count("subset_size", subset_size, minimum=2)
    a, b = _pair(features_a, features_b)
    size, d, rng = min(subset_size, len(a), len(b)), a.shape[1], np.random.default_rng(checks.seed("seed", seed))
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        values.append(within - 2 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


# ------------------------------------------------ nearest neighbours: P/R, D/C, copies


def _distances(a, b):
    """Euclidean distances (len(a), len(b)), via |a|^2 + |b|^2 - 2 a.b."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(squared, 0, None))


def _rows(points, others, budget=20_000_000):
    """Slices of ``points`` small enough that a block of distances stays under ``budget``."""
    step = max(1, budget // max(len(others), 1))
    return [slice(i, i + step) for i in range(0, len(points), step)]


def _nearest(points, others):
    """Distance from each point to its nearest neighbour among ``others``."""
    return np.concatenate([_distances(points[s], others).min(axis=1) for s in _rows(points, others)])


def _radii(x, k):
    """Distance from each sample to its k-th nearest neighbour in its own set (not itself)."""
    return np.concatenate([np.sort(_distances(x[s], x), axis=1)[:, k] for s in _rows(x, x)])


def _balls_holding(points, centres, radii):
    """For each point, how many balls B(centre_i, radius_i) hold it (distance <= radius)."""
    return np.concatenate([(_distances(points[s], centres) <= radii[None, :]).sum(axis=1)
                           for s in _rows(points, centres)])


def precision_recall(real, fake, k=3):
    """Improved precision and recall (Kynkaanniemi et al., 2019). Each sample's ball
    reaches its k-th nearest neighbour in its own set; the balls of a set estimate its
    support. precision = share of fakes inside some real ball (quality), recall = share
    of reals inside some fake ball (variety). Returns (precision, recall)."""
    real, fake = _pair(real, fake, checks.count("k", k) + 1, ("real", "fake"))
    precision = np.mean(_balls_holding(fake, real, _radii(real, k)) > 0)
    recall = np.mean(_balls_holding(real, fake, _radii(fake, k)) > 0)
    return float(precision), float(recall)


def density_coverage(real, fake, k=5):
    """Density and coverage (Naeem et al., 2020), with real balls only, which outliers
    among the fakes cannot inflate. density = (1 / kM) sum over fakes of the number of
    real balls holding each (about 1 when fakes are distributed like reals, can exceed
    1); coverage = share of real balls that hold at least one fake. Returns (density,
    coverage)."""
    real, fake = _pair(real, fake, checks.count("k", k) + 1, ("real", "fake"))
    radii = _radii(real, k)
    density = _balls_holding(fake, real, radii).sum() / (k * len(fake))
    coverage = np.mean(_nearest(real, fake) <= radii)
    return float(density), float(coverage)


def copying(train, fake, held_out):
    """Are the fakes copies of training samples? Compares each fake's distance to its
    nearest training sample with the same distance for held-out real samples, which
    nobody copied. Returns ``ratio`` (median fake distance / median held-out distance:
    about 1 or more for new samples, near 0 for copies), the two medians, and
    ``near_copies`` (share of fakes nearer to a training sample than 99 % of held-out
    samples are: about 0.01 for new samples)."""
    train, fake = _pair(train, fake, 1, ("train", "fake"))
    train, held_out = _pair(train, held_out, 1, ("train", "held_out"))
    d_fake, d_real = _nearest(fake, train), _nearest(held_out, train)
    median_real = float(np.median(d_real))
    return {"ratio": float(np.median(d_fake)) / median_real if median_real > 0 else math.inf,
            "fake_median": float(np.median(d_fake)), "held_out_median": median_real,
            "near_copies": float(np.mean(d_fake < np.quantile(d_real, 0.01)))}


# ------------------------------------------------------------ labels and classes


def label_accuracy(images, labels):
    """Share of images the classifier reads as the label they were drawn for. Real
    test digits score the classifier's own accuracy, the most a generator can get."""
    x, y = classifier.as_images("images", images), np.asarray(labels).reshape(-1)
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


def fid_floor(n=1000):
    """Real vs real: FID between ``n`` train digits and ``n`` held-out test digits, what
    perfect digits of the training set would score. Computed once per process and size."""
    n = checks.count("n", n, minimum=2)
    return classifier.remember(("floor", n), lambda: fid(
        features(data.balanced(*classifier.mnist("train"), n)[0]), features(reference_digits(n)[0])))


def scale(n=1000):
    """Landmarks of the FID scale at sample size ``n``, against held-out digits:
    ``real_vs_real`` (the floor), ``one_class_vs_real`` (up to n training digits that are
    all 1s, a collapsed generator: 400 with the bundled digits) and ``noise_vs_real``
    (uniform noise in [-1, 1])."""
    n = checks.count("n", n, minimum=2)

    def landmarks():
        (x, y), test = classifier.mnist("train"), features(reference_digits(n)[0])
        noise = np.random.default_rng(0).uniform(-1, 1, size=(len(test), 28, 28, 1)).astype(np.float32)
        return {"n": len(test), "real_vs_real": fid_floor(n), "one_class_vs_real": fid(features(x[y == 1][:n]), test),
                "noise_vs_real": fid(features(noise), test)}

    return dict(classifier.remember(("scale", n), landmarks))


def generator_inputs(generator, n, seed=0):
    """Fixed inputs for a generator: noise (n, latent_dim) from ``seed`` and, for a
    conditional generator (two inputs), labels 0, 1, ..., 9, 0, 1, ... Returns the input
    (noise or [noise, labels]) and the labels (None when unconditional)."""
    n, rng = checks.count("n", n), np.random.default_rng(checks.seed("seed", seed))
    as_model("generator", generator, inputs=(1, 2))
    noise = rng.standard_normal((n, int(generator.inputs[0].shape[-1]))).astype(np.float32)
    if len(generator.inputs) == 2:
        labels = (np.arange(n) % NUM_CLASSES).astype(np.int32)
        return [noise, labels], labels
    return noise, None


def generate(generator, inputs, batch_size=250):
    """Run a network on fixed inputs (an array, or a list of arrays) in batches, in
    inference mode; returns NumPy."""
    as_model("generator", generator), checks.count("batch_size", batch_size)
    parts = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    out = [generator([p[i:i + batch_size] for p in parts] if len(parts) > 1 else parts[0][i:i + batch_size],
                     training=False) for i in range(0, len(parts[0]), batch_size)]
    return np.concatenate([np.asarray(o) for o in out])


def evaluate_images(images, n=1000, labels=None):
    """Every metric of the course for images in [-1, 1] against ``n`` held-out test digits
    (``labels``: the class each image was asked for, when conditional). Returns a
    JSON-ready dict: fid, fid_floor (real vs real at the same size), fid_ratio, kid and
    kid_std, inception_score, precision, recall, density, coverage, copying_ratio and
    near_copies (pixels, against the train split), classes_covered, class_entropy,
    label_accuracy (when labels are given) and n."""
    images = classifier.as_images("images", images, 10)
    reference, _ = reference_digits(min(checks.count("n", n, minimum=2), len(images)))
    fake, real = features(images), features(reference)
    floor, value = fid_floor(len(reference)), fid(fake, real)
    kid_mean, kid_std = kid(fake, real)
    (precision, recall), (density, coverage) = precision_recall(real, fake), density_coverage(real, fake)
    flat = [x.reshape(len(x), -1) for x in (classifier.mnist("train")[0], images, reference)]
    copies, classes = copying(*flat), class_coverage(images)
    result = {"fid": value, "fid_floor": floor, "fid_ratio": value / floor if floor > 0 else math.inf,
              "kid": kid_mean, "kid_std": kid_std, "inception_score": inception_score(probabilities(images)),
              "precision": precision, "recall": recall, "density": density, "coverage": coverage,
              "copying_ratio": copies["ratio"], "near_copies": copies["near_copies"],
              "classes_covered": classes["classes_covered"], "class_entropy": classes["entropy"]}
    labelled = {} if labels is None else {"label_accuracy": label_accuracy(images, labels)}
    return {**result, **labelled, "n": len(images)}


def evaluate_generator(generator, n=1000, seed=0):
    """``evaluate_images`` of ``n`` samples of a generator drawn from fixed noise
    (``seed``); a conditional generator is asked for each digit n/10 times."""
    inputs, labels = generator_inputs(generator, checks.count("n", n, minimum=10), seed)
    return evaluate_images(generate(generator, inputs), n, labels)
