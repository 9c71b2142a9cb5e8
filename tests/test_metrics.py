"""Tests of gan_lessons.metrics through the course classifier (the shipped weights; the
classifier itself is tested in test_classifier.py): FID/KID ordering on digits, label
accuracy, class coverage, evaluate_generator and FIDMonitor, and exact values with a
stub classifier.
"""

import json
import math

import keras
import numpy as np
import pytest

import gan_lessons  # noqa: F401  (quiet TensorFlow first)
from gan_lessons import callbacks, classifier, data, gan, metrics

N = 300  # samples per set: enough for stable orderings, fast on a CPU


@pytest.fixture(scope="module", autouse=True)
def shipped_classifier():
    classifier.forget()
    yield
    classifier.forget()


@pytest.fixture(scope="module")
def sets():
    x_train, y_train = data.load_mnist("train", source="bundled", verbose=False)
    real_a, _ = data.balanced(x_train, y_train, N)
    real_b, labels_b = metrics.reference_digits(N)
    one_class = x_train[y_train == 1][:N]
    noise = np.random.default_rng(0).uniform(-1, 1, size=real_b.shape).astype(np.float32)
    return {"train": real_a, "test": real_b, "test_labels": labels_b, "ones": one_class, "noise": noise}


def test_features_have_the_documented_shape(sets):
    f = metrics.features(sets["test"][:7])
    assert f.shape == (7, 128)
    assert np.all(np.isfinite(f))


def test_frechet_distance_matches_closed_forms():
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
    d = metrics.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]]))
    assert d == pytest.approx((1 - 3) ** 2 + (2 - 1) ** 2)
    # Non-commuting covariances: Tr((A B)^1/2) is the sum of sqrt(eigenvalues of A B).
    rng = np.random.default_rng(1)
    m_a, m_b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    cov_a, cov_b = m_a @ m_a.T, m_b @ m_b.T
    cross = np.sum(np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real.clip(0)))
    expected = np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    zero = np.zeros(5)
    assert metrics.frechet_distance(zero, cov_a, zero, cov_b) == pytest.approx(expected, rel=1e-6)
    assert metrics.frechet_distance(zero, cov_a, zero, cov_a) == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def feats(sets):
    return {name: metrics.features(x) for name, x in sets.items() if name != "test_labels"}


def test_fid_orders_self_real_one_class_noise(feats):
    self_fid = metrics.fid(feats["test"], feats["test"])
    real = metrics.fid(feats["train"], feats["test"])
    one_class = metrics.fid(feats["ones"], feats["test"])
    noise = metrics.fid(feats["noise"], feats["test"])
    assert self_fid == pytest.approx(0, abs=1e-6 * noise)
    assert real < 0.05 * noise  # real vs real is small on the scale
    assert one_class > 10 * real  # a collapsed "generator" is far worse
    assert noise > one_class  # and noise is the worst


def test_kid_orders_real_one_class_noise(feats):
    (real, real_std), (one_class, _), (noise, _) = (
        metrics.kid(feats[name], feats["test"], subsets=5, subset_size=200) for name in ("train", "ones", "noise"))
    assert real_std > 0
    assert abs(real) < 0.05 * noise
    assert one_class > 10 * abs(real)
    assert noise > one_class


def test_scale_and_floor():
    s = metrics.scale(n=N)
    assert s["real_vs_real"] == metrics.fid_floor(N) > 0
    assert s["real_vs_real"] < s["one_class_vs_real"] < s["noise_vs_real"]


def test_label_accuracy_of_real_digits_is_high(sets):
    assert metrics.label_accuracy(sets["test"], sets["test_labels"]) > 0.9
    wrong = (sets["test_labels"] + 1) % 10
    assert metrics.label_accuracy(sets["test"], wrong) < 0.1


def test_class_coverage(sets):
    ones = metrics.class_coverage(sets["ones"])
    real = metrics.class_coverage(sets["test"])
    assert ones["classes_covered"] == 1
    assert ones["entropy"] < 0.5
    assert real["classes_covered"] == 10
    assert real["entropy"] > 0.95 * math.log(10)
    assert sum(real["histogram"]) == N


def _lookup_generator(images, labels):
    """A 'conditional generator' that returns one fixed real digit per label."""
    picks = np.stack([images[np.flatnonzero(labels == c)[0]] for c in range(10)])
    noise = keras.Input((8,), name="noise")
    label = keras.Input((1,), dtype="int32", name="label")
    table = keras.layers.Embedding(10, 28 * 28, weights=[picks.reshape(10, -1)])(label)
    ignored = keras.layers.Dense(28 * 28, kernel_initializer="zeros", use_bias=False)(noise)  # noise unused, but wired
    image = keras.layers.Reshape((28, 28, 1))(keras.layers.Add()([table[:, 0], ignored]))
    return keras.Model([noise, label], image), picks


def test_evaluate_generator_conditional(sets):
    generator, picks = _lookup_generator(sets["train"], data.balanced(
        *data.load_mnist("train", source="bundled", verbose=False), N)[1])
    expected = np.mean(metrics.classify(picks) == np.arange(10))
    result = metrics.evaluate_generator(generator, n=200, seed=0)
    json.dumps(result)
    assert result["n"] == 200
    assert result["label_accuracy"] == pytest.approx(expected)
    assert result["classes_covered"] >= 9
    assert result["fid_ratio"] == pytest.approx(result["fid"] / result["fid_floor"])
    assert result["fid_ratio"] > 3  # ten images repeated are far from real variety


def test_evaluate_generator_unconditional_noise_is_bad():
    noise = keras.Input((16,))
    image = keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(28 * 28, activation="tanh")(noise))
    result = metrics.evaluate_generator(keras.Model(noise, image), n=200)
    assert "label_accuracy" not in result
    assert set(result) == {"fid", "kid", "kid_std", "fid_floor", "fid_ratio", "inception_score", "precision",
                           "recall", "density", "coverage", "copying_ratio", "near_copies", "classes_covered",
                           "class_entropy", "n"}
    assert result["fid_ratio"] > 20
    assert result["recall"] < 0.05 and result["coverage"] < 0.05  # no real digit lies near a noise image
    json.dumps(result)


def test_fid_monitor_records_each_epoch():
    x, _ = data.load_mnist("train", source="bundled", limit=128, verbose=False)
    trainer = gan.GAN(gan.dcgan_generator(latent_dim=16, filters=8), gan.dcgan_discriminator(filters=8))
    trainer.compile(d_optimizer=keras.optimizers.Adam(2e-4), g_optimizer=keras.optimizers.Adam(2e-4))
    trainer.run_eagerly = True  # a few steps, eagerly (conftest.py says why)
    monitor = callbacks.FIDMonitor(every=1, n=50, log=True)
    dataset, steps = data.make_dataset(x, batch_size=64)
    history = trainer.fit(dataset, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[monitor])
    assert monitor.history["epoch"] == [1, 2]
    assert all(np.isfinite(monitor.history["fid"]))
    assert history.history["fid"] == pytest.approx(monitor.history["fid"])
    # The fixed noise makes a measurement repeatable.
    assert monitor.measure()["fid"] == pytest.approx(monitor.history["fid"][-1], rel=1e-5)


def test_fid_monitor_measures_label_accuracy_of_a_conditional_generator(sets):
    _, labels = data.balanced(*data.load_mnist("train", source="bundled", verbose=False), N)
    generator, picks = _lookup_generator(sets["train"], labels)
    expected = np.mean(metrics.classify(picks) == np.arange(10))
    monitor = callbacks.FIDMonitor(n=50)
    monitor.set_model(type("Trainer", (), {"generator": generator})())
    monitor.set_params({"epochs": 1})
    monitor.on_train_begin()
    monitor.on_epoch_end(0, {})
    assert monitor.history["epoch"] == [1]
    assert monitor.history["label_accuracy"] == [pytest.approx(expected)]


def test_bad_arguments_raise_clear_errors(sets):
    with pytest.raises(ValueError, match="features_a must be a 2-D array"):
        metrics.fid(np.zeros((5, 32, 32, 3)), np.zeros((5, 128)))
    with pytest.raises(ValueError, match="min_share"):
        metrics.class_coverage(sets["test"], min_share=0)
    with pytest.raises(ValueError, match="labels"):
        metrics.label_accuracy(sets["test"], sets["test_labels"][:3])
    with pytest.raises(ValueError, match="every"):
        callbacks.FIDMonitor(every=0)
    with pytest.raises(ValueError, match=r"images must be an array of shape .* got shape \(0, 28, 28, 1\)"):
        metrics.features(sets["test"][:0])
    with pytest.raises(ValueError, match="images holds 1 NaN or infinite value"):
        metrics.classify(np.where(np.arange(784).reshape(1, 28, 28) == 5, np.nan, 0.0))
    with pytest.raises(ValueError, match="images must hold at least 10 images; got 3"):
        metrics.evaluate_images(sets["test"][:3])
    with pytest.raises(ValueError, match="n must be at most 1,000 .*; got 1200"):
        metrics.evaluate_images(np.zeros((1200, 28, 28)), n=2000)
    with pytest.raises(ValueError, match="n must be at most 1,000"):
        metrics.fid_floor(1001)
    inputs = [keras.Input((2,)), keras.Input((3,)), keras.Input((1,))]
    three_inputs = keras.Model(inputs, keras.layers.Concatenate()(inputs), name="three")
    with pytest.raises(ValueError, match="generator must take 1 or 2 input.*'three' takes 3"):
        metrics.evaluate_generator(three_inputs, n=20)


# ------------------------------------------------- exact values with a stub classifier


@pytest.fixture
def stub_classifier():
    """A stand-in classifier: the class of an image is round(10 * its first pixel), and
    its features are its first two pixels, so that results can be computed by hand."""
    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    pick = np.zeros((28 * 28, 2), "float32")
    pick[0, 0] = pick[1, 1] = 1.0
    pick_layer = keras.layers.Dense(2, use_bias=False)
    feats = pick_layer(flat)
    pick_layer.set_weights([pick])
    # logit_c = 20 c p0 - c^2 = (10 p0)^2 - (c - 10 p0)^2: largest for the c nearest 10 p0.
    kernel = np.zeros((28 * 28, 10), "float32")
    kernel[0] = 20 * np.arange(10)
    logit_layer = keras.layers.Dense(10)
    logits = logit_layer(flat)
    logit_layer.set_weights([kernel, -np.arange(10, dtype="float32") ** 2])
    classifier.forget()
    classifier._state.update(classifier=keras.Model(inputs, logits), extractor=keras.Model(inputs, feats),
                             info={"accuracy": 1.0, "source": "stub", "quick": True})
    yield
    classifier.forget()


def _images(first_pixels, second_pixels=None):
    x = np.zeros((len(first_pixels), 28, 28, 1), "float32")
    x[:, 0, 0, 0] = first_pixels
    if second_pixels is not None:
        x[:, 0, 1, 0] = second_pixels
    return x


def test_class_coverage_matches_a_hand_count(stub_classifier):
    classes = [0] * 50 + [1] * 30 + [2] * 20 + [3]  # class 3: 1 image in 101, under the 2 % share
    result = metrics.class_coverage(_images(np.array(classes) / 10))
    assert result["histogram"] == [50, 30, 20, 1, 0, 0, 0, 0, 0, 0]
    assert result["classes_covered"] == 3
    p = np.array([50, 30, 20, 1]) / 101
    assert result["entropy"] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    assert metrics.class_coverage(_images(np.full(5, 0.7)))["entropy"] == 0.0


def test_kid_matches_a_hand_computed_mmd(stub_classifier):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (5, 2)), rng.uniform(-1, 1, (5, 2)) + 0.5
    images_a, images_b = _images(a[:, 0], a[:, 1]), _images(b[:, 0], b[:, 1])
    fa, fb = metrics.features(images_a), metrics.features(images_b)
    assert np.allclose(fa, a, atol=1e-6)  # the stub's features are the two pixels

    def k(x, y):
        return (x @ y / 2 + 1) ** 3  # the cubic kernel, d = 2

    def mmd2(x, y):
        m, n = len(x), len(y)
        within_x = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        within_y = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        across = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
        return within_x + within_y - 2 * across

    # One subset holding all 5 samples of each set: the subset's order does not matter.
    assert metrics.kid(fa, fb, subsets=1, subset_size=5) == (pytest.approx(mmd2(fa, fb), rel=1e-9), 0.0)
    assert metrics.kid(fa, fb, subsets=4, subset_size=50)[0] == pytest.approx(mmd2(fa, fb), rel=1e-9)
    assert mmd2(fa, fb) > 0.1
