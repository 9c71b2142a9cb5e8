"""CycleGAN (lesson 05): domains, style function, builders, image pool, schedule, trainer, CLI."""

import json

import keras
import numpy as np
import pytest

import gan_lessons
from gan_lessons import data, domains, models, trainers
from gan_lessons.__main__ import main


@pytest.fixture(scope="module")
def digits():
    return data.load_mnist("train", source="bundled", limit=200, verbose=False)


def _identity_generator(name):
    """A trainable 1x1 convolution that starts as the identity map."""
    x = keras.Input((28, 28, 1))
    conv = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros", name="copy")
    return keras.Model(x, conv(x), name=name)


# ------------------------------------------------------------------------ domains


def test_style_is_deterministic_and_per_image(digits):
    x, _ = digits
    first, second = domains.style(x[:20]), domains.style(x[:20])
    assert np.array_equal(first, second)
    assert first.shape == (20, 28, 28, 1) and first.dtype == np.float32
    assert first.min() >= -1 and first.max() <= 1
    # Each image is styled on its own: alone or in a batch, the same answer.
    assert np.array_equal(domains.style(x[7]), first[7])
    # The style really changes the image: the background turns to light paper.
    assert np.allclose(first[:, 0, 0, 0], 2 * domains.PAPER - 1)
    assert np.mean(np.abs(first - x[:20])) > 0.5


def test_style_rejects_colour_images():
    with pytest.raises(ValueError, match="images"):
        domains.style(np.zeros((2, 28, 28, 3), "float32"))


def test_the_two_domains_share_no_source_digit(digits):
    x, y = digits
    d = domains.split_unpaired(x, y)
    assert set(d.a_index).isdisjoint(d.b_index)
    assert sorted(np.concatenate([d.a_index, d.b_index])) == list(range(len(x)))
    assert np.array_equal(d.a, x[d.a_index]) and np.array_equal(d.a_labels, y[d.a_index])
    assert np.array_equal(d.b, domains.style(x[d.b_index])) and np.array_equal(d.b_labels, y[d.b_index])
    # Both sides hold every class about equally often.
    assert np.all(np.abs(np.bincount(d.a_labels, minlength=10) - np.bincount(d.b_labels, minlength=10)) <= 1)
    # No B image is the styled twin of an A image.
    twins = domains.style(d.a)
    assert min(np.abs(twins - b).max() for b in d.b[:20]) > 0


def test_held_out_domains_come_from_the_test_split():
    train = domains.load_digit_domains("train", source="bundled", verbose=False)
    test = domains.load_digit_domains("test", source="bundled", verbose=False)
    assert len(train.a) + len(train.b) == 4000 and len(test.a) + len(test.b) == 1000
    train_a = {img.tobytes() for img in train.a}
    assert not any(img.tobytes() in train_a for img in test.a)


def test_unpaired_dataset_gives_independent_batches(digits):
    x, y = digits
    d = domains.split_unpaired(x, y)
    ds = domains.make_unpaired_dataset(d, batch_size=16, seed=0)
    batches = list(ds)
    assert len(batches) == len(d) // 16
    a, b = batches[0]
    assert a.shape == (16, 28, 28, 1) and b.shape == (16, 28, 28, 1)
    with pytest.raises(ValueError, match="batch_size"):
        domains.make_unpaired_dataset(d, batch_size=1000)


def test_photo_option_fails_with_one_sentence_offline():
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorflow-datasets is installed here")
    with pytest.raises(data.DatasetUnavailable) as info:
        domains.load_photo_domains("horse2zebra")
    message = str(info.value)
    assert "tensorflow-datasets" in message and "\n" not in message and message.count(". ") == 0
    with pytest.raises(ValueError, match="name"):
        domains.load_photo_domains("cats2dogs")


# ------------------------------------------------------------------------ models


def test_builders_shapes():
    g = models.resnet_generator(filters=8, residual_blocks=1)
    assert g.input_shape == (None, 28, 28, 1) and g.output_shape == (None, 28, 28, 1)
    images = np.asarray(g(np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype("float32")))
    assert images.min() >= -1 and images.max() <= 1
    assert models.resnet_generator((32, 32, 3), filters=8, residual_blocks=0).output_shape == (None, 32, 32, 3)
    d = models.patchgan_discriminator(filters=8)
    assert d.output_shape == (None, 7, 7, 1)
    norms = [layer for layer in g.layers if isinstance(layer, keras.layers.GroupNormalization)]
    # Instance normalisation: one group per channel (Keras stores groups=-1 as the channel count).
    assert norms and all(layer.groups in (-1, layer.input.shape[-1]) for layer in norms)


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="image_shape"):
        models.resnet_generator((30, 30, 1))
    with pytest.raises(ValueError, match="filters"):
        models.patchgan_discriminator(filters=0)
    with pytest.raises(ValueError, match="residual_blocks"):
        models.resnet_generator(residual_blocks=-1)


# -------------------------------------------------------------------- image pool


def _batch(values):
    return np.asarray(values, "float32").reshape(-1, 1, 1, 1)


def test_pool_stores_then_returns_the_first_images_unchanged():
    pool = trainers.ImagePool(size=5, image_shape=(1, 1, 1), seed=0)
    out = np.asarray(pool(_batch([1, 2, 3])))
    assert out.ravel().tolist() == [1, 2, 3]
    out = np.asarray(pool(_batch([4, 5])))
    assert out.ravel().tolist() == [4, 5]
    assert sorted(np.asarray(pool.images).ravel().tolist()) == [1, 2, 3, 4, 5]
    assert int(np.asarray(pool.count)) == 5


def test_a_full_pool_swaps_about_half_and_loses_nothing():
    pool = trainers.ImagePool(size=50, image_shape=(1, 1, 1), seed=1)
    pool(_batch(np.arange(50)))
    swapped, seen = 0, 0
    for step in range(1, 41):
        fresh = 1000 * step + np.arange(10)
        before = np.asarray(pool.images).ravel().tolist()
        out = np.asarray(pool(_batch(fresh))).ravel().tolist()
        after = np.asarray(pool.images).ravel().tolist()
        # Every image is either returned or kept: nothing is lost or duplicated.
        assert sorted(before + fresh.tolist()) == sorted(out + after)
        old = [v for v in out if v < 1000 * step]
        assert set(old) <= set(before)  # a returned old image came from the pool
        swapped += len(old)
        seen += len(out)
    assert 0.35 < swapped / seen < 0.65


def test_pool_of_size_zero_is_off():
    pool = trainers.ImagePool(size=0, image_shape=(1, 1, 1))
    assert np.asarray(pool(_batch([7, 8]))).ravel().tolist() == [7, 8]
    with pytest.raises(ValueError, match="size"):
        trainers.ImagePool(size=-1)


# ---------------------------------------------------------------------- schedule


def test_linear_decay_is_flat_then_falls_to_zero():
    schedule = trainers.LinearDecay(1.0, total_steps=10)
    values = [float(schedule(step)) for step in range(12)]
    assert values[:6] == [1.0] * 6
    assert np.allclose(values[6:], [0.8, 0.6, 0.4, 0.2, 0.0, 0.0])
    assert float(trainers.LinearDecay(1.0)(500)) == 1.0  # not sized yet: constant
    with pytest.raises(ValueError, match="total_steps"):
        trainers.LinearDecay(1.0, total_steps=0)


# ----------------------------------------------------------------------- trainer


def _cyclegan(g_ab, g_ba, **kwargs):
    gan = trainers.CycleGAN(g_ab, g_ba, models.patchgan_discriminator(filters=4),
                            models.patchgan_discriminator(filters=4), **kwargs)
    gan.compile(keras.optimizers.Adam(trainers.LinearDecay(2e-4), beta_1=0.5),
                keras.optimizers.Adam(trainers.LinearDecay(2e-4), beta_1=0.5))
    return gan


def test_cycle_and_identity_losses_are_zero_for_identity_generators(digits):
    x, y = digits
    d = domains.split_unpaired(x, y)
    gan = _cyclegan(_identity_generator("g_ab"), _identity_generator("g_ba"))
    logs = gan.fit(domains.make_unpaired_dataset(d, 16).take(1), epochs=1, verbose=0).history
    assert logs["cycle_loss"][0] == pytest.approx(0.0, abs=1e-6)
    assert logs["identity_loss"][0] == pytest.approx(0.0, abs=1e-6)
    assert logs["adversarial_loss"][0] > 0


def test_fit_sizes_the_schedule_and_trains(digits):
    x, y = digits
    d = domains.split_unpaired(x, y)
    gan_lessons.set_seed(0)
    gan = _cyclegan(models.resnet_generator(filters=4, residual_blocks=1),
                    models.resnet_generator(filters=4, residual_blocks=1), pool_size=8)
    ds = domains.make_unpaired_dataset(d, 16)
    before = gan.generator_ab.get_weights()[0].copy()
    history = gan.fit(ds, epochs=2, verbose=0).history
    assert gan.g_optimizer._learning_rate.total_steps == 2 * (len(d) // 16)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed to 0 at the end
    assert not np.array_equal(before, gan.generator_ab.get_weights()[0])
    assert all(np.isfinite(v).all() for v in history.values())
    assert int(np.asarray(gan.pool_a.count)) == 8


def test_without_the_cycle_loss_it_is_not_computed(digits):
    x, y = digits
    gan = _cyclegan(_identity_generator("g_ab"), _identity_generator("g_ba"), cycle_weight=0.0)
    logs = gan.fit(domains.make_unpaired_dataset(domains.split_unpaired(x, y), 16).take(1), verbose=0).history
    assert logs["cycle_loss"] == [0.0]
    with pytest.raises(ValueError, match="cycle_weight"):
        _cyclegan(_identity_generator("g_ab"), _identity_generator("g_ba"), cycle_weight=-1)


def test_translation_report_of_identity_generators(digits):
    x, y = digits
    d = domains.split_unpaired(x, y)
    copy = _identity_generator("copy")
    report = domains.translation_report(copy, copy, d, classify=lambda images: np.zeros(len(images), int))
    assert report["cycle_error_a"] == pytest.approx(0.0, abs=1e-6)
    assert report["cycle_error_b"] == pytest.approx(0.0, abs=1e-6)
    assert report["style_error"] == pytest.approx(report["style_error_copy"], rel=1e-5)
    assert report["class_kept_b_to_a"] == pytest.approx(np.mean(d.b_labels == 0))


# --------------------------------------------------------------------------- CLI


def test_cli_quick_run_writes_the_contract_files(tmp_path, capsys):
    out = tmp_path / "cyc"
    assert main(["train", "cyclegan", "--out", str(out), "--quick"]) == 0
    for name in ("generator_ab.keras", "generator_ba.keras", "test_domains.npz", "samples.png", "history.json"):
        assert (out / name).is_file(), name
    test = np.load(out / "test_domains.npz")
    assert set(test.files) == {"a", "a_labels", "b", "b_labels"}
    assert test["a"].shape[1:] == (28, 28, 1) and len(test["b"]) == len(test["b_labels"])
    for name in ("generator_ab.keras", "generator_ba.keras"):
        g = keras.saving.load_model(out / name, compile=False)
        images = np.asarray(g(test["a"][:3]))
        assert images.shape == (3, 28, 28, 1) and images.min() >= -1 and images.max() <= 1
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1] and "cycle_loss" in history
    capsys.readouterr()
    assert main(["evaluate", str(out), "--n", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("class_kept_b_to_a", "class_kept_a_to_b_to_a", "cycle_error_a", "style_error"):
        assert key in result
