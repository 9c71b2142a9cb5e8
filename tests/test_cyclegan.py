"""CycleGAN (lesson 05): domains, style function, builders, image pool, schedule, trainer, CLI."""

import json

import keras
import numpy as np
import pytest

import gan_lessons
from gan_lessons import cyclegan, data, metrics
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
    first, second = cyclegan.style(x[:20]), cyclegan.style(x[:20])
    assert np.array_equal(first, second)
    assert first.shape == (20, 28, 28, 1) and first.dtype == np.float32
    assert first.min() >= -1 and first.max() <= 1
    # Each image is styled on its own: alone or in a batch, the same answer.
    assert np.array_equal(cyclegan.style(x[7]), first[7])
    # The style really changes the image: the background turns to light paper.
    assert np.allclose(first[:, 0, 0, 0], 2 * cyclegan.PAPER - 1)
    assert np.mean(np.abs(first - x[:20])) > 0.5


def test_style_rejects_colour_images():
    with pytest.raises(ValueError, match="images"):
        cyclegan.style(np.zeros((2, 28, 28, 3), "float32"))


def test_the_two_domains_share_no_source_digit(digits):
    x, y = digits
    d = cyclegan.split_unpaired(x, y)
    assert set(d.a_index).isdisjoint(d.b_index)
    assert sorted(np.concatenate([d.a_index, d.b_index])) == list(range(len(x)))
    assert np.array_equal(d.a, x[d.a_index]) and np.array_equal(d.a_labels, y[d.a_index])
    assert np.array_equal(d.b, cyclegan.style(x[d.b_index])) and np.array_equal(d.b_labels, y[d.b_index])
    # Both sides hold every class about equally often.
    assert np.all(np.abs(np.bincount(d.a_labels, minlength=10) - np.bincount(d.b_labels, minlength=10)) <= 1)
    # No B image is the styled twin of an A image.
    twins = cyclegan.style(d.a)
    assert min(np.abs(twins - b).max() for b in d.b[:20]) > 0


def test_held_out_domains_come_from_the_test_split():
    train = cyclegan.load_digit_domains("train", source="bundled", verbose=False)
    test = cyclegan.load_digit_domains("test", source="bundled", verbose=False)
    assert len(train.a) + len(train.b) == 4000 and len(test.a) + len(test.b) == 1000
    train_a = {img.tobytes() for img in train.a}
    assert not any(img.tobytes() in train_a for img in test.a)


def test_saved_domains_keep_the_contract_arrays(digits, tmp_path):
    x, y = digits
    d = cyclegan.split_unpaired(x, y)
    d.save(tmp_path / "test_domains.npz")
    assert set(np.load(tmp_path / "test_domains.npz").files) == {"a", "a_labels", "b", "b_labels"}
    back = cyclegan.UnpairedDomains.load(tmp_path / "test_domains.npz")
    assert np.array_equal(back.a, d.a) and np.array_equal(back.b_labels, d.b_labels)
    head = back.head(5)
    assert len(head.a) == len(head.b) == len(head.a_labels) == len(head.b_labels) == 5


# ------------------------------------------------------------------------ models


def test_builders_shapes():
    g = cyclegan.resnet_generator(filters=8, residual_blocks=1)
    assert g.input_shape == (None, 28, 28, 1) and g.output_shape == (None, 28, 28, 1)
    images = np.asarray(g(np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype("float32")))
    assert images.min() >= -1 and images.max() <= 1
    assert cyclegan.resnet_generator(filters=8, residual_blocks=0).output_shape == (None, 28, 28, 1)
    d = cyclegan.patchgan_discriminator(filters=8)
    assert d.output_shape == (None, 7, 7, 1)
    norms = [layer for layer in g.layers if isinstance(layer, keras.layers.GroupNormalization)]
    # Instance normalisation: one group per channel (Keras stores groups=-1 as the channel count).
    assert norms and all(layer.groups in (-1, layer.input.shape[-1]) for layer in norms)


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="filters"):
        cyclegan.patchgan_discriminator(filters=0)
    with pytest.raises(ValueError, match="residual_blocks"):
        cyclegan.resnet_generator(residual_blocks=-1)


# -------------------------------------------------------------------- image pool


def _batch(values):
    """Images numbered by ``values``: every pixel of image i holds values[i]."""
    return np.repeat(np.asarray(values, "float32"), 28 * 28).reshape(-1, 28, 28, 1)


def _numbers(images):
    return np.asarray(images)[:, 0, 0, 0].tolist()


def test_pool_stores_then_returns_the_first_images_unchanged():
    pool = cyclegan.ImagePool(size=5, seed=0)
    out = pool(_batch([1, 2, 3]))
    assert _numbers(out) == [1, 2, 3]
    out = pool(_batch([4, 5]))
    assert _numbers(out) == [4, 5]
    assert sorted(_numbers(pool.images)) == [1, 2, 3, 4, 5]
    assert int(np.asarray(pool.count)) == 5


def test_a_full_pool_swaps_about_half_and_loses_nothing():
    pool = cyclegan.ImagePool(size=50, seed=1)
    pool(_batch(np.arange(50)))
    swapped, seen = 0, 0
    for step in range(1, 41):
        fresh = 1000 * step + np.arange(10)
        before = _numbers(pool.images)
        out = _numbers(pool(_batch(fresh)))
        after = _numbers(pool.images)
        # Every image is either returned or kept: nothing is lost or duplicated.
        assert sorted(before + fresh.tolist()) == sorted(out + after)
        old = [v for v in out if v < 1000 * step]
        assert set(old) <= set(before)  # a returned old image came from the pool
        swapped += len(old)
        seen += len(out)
    assert 0.35 < swapped / seen < 0.65


def test_pool_of_size_zero_is_off():
    pool = cyclegan.ImagePool(size=0)
    assert _numbers(pool(_batch([7, 8]))) == [7, 8]
    with pytest.raises(ValueError, match="size"):
        cyclegan.ImagePool(size=-1)


# ---------------------------------------------------------------------- schedule


def test_linear_decay_is_flat_then_falls_to_zero():
    schedule = cyclegan.LinearDecay(1.0, total_steps=10)
    values = [float(schedule(step)) for step in range(12)]
    assert values[:6] == [1.0] * 6
    assert np.allclose(values[6:], [0.8, 0.6, 0.4, 0.2, 0.0, 0.0])
    for bad in (0, None, 2.5):
        with pytest.raises(ValueError, match="total_steps must be a positive integer"):
            cyclegan.LinearDecay(1.0, total_steps=bad)


# ----------------------------------------------------------------------- trainer


def _cyclegan(g_ab, g_ba, total_steps=100, seed=0, **kwargs):
    trainer = cyclegan.CycleGAN(g_ab, g_ba, cyclegan.patchgan_discriminator(filters=4),
                                cyclegan.patchgan_discriminator(filters=4), seed=seed, **kwargs)
    trainer.compile(d_optimizer=keras.optimizers.Adam(cyclegan.LinearDecay(2e-4, total_steps), beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(cyclegan.LinearDecay(2e-4, total_steps), beta_1=0.5))
    return trainer


def _unpaired(digits, batch_size=16):
    d = cyclegan.split_unpaired(*digits)
    return data.make_unpaired_dataset(d.a, d.b, batch_size)


def test_cycle_and_identity_losses_are_zero_for_identity_generators(digits):
    trainer = _cyclegan(_identity_generator("g_ab"), _identity_generator("g_ba"))
    dataset, _ = _unpaired(digits)
    logs = trainer.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0).history
    assert logs["cycle_loss"][0] == pytest.approx(0.0, abs=1e-6)
    assert logs["identity_loss"][0] == pytest.approx(0.0, abs=1e-6)
    assert logs["adversarial_loss"][0] > 0


def test_training_follows_the_schedule_down_to_zero(digits):
    dataset, steps = _unpaired(digits)
    gan_lessons.set_seed(0)
    trainer = _cyclegan(cyclegan.resnet_generator(filters=4, residual_blocks=1),
                        cyclegan.resnet_generator(filters=4, residual_blocks=1), total_steps=2 * steps, pool_size=8)
    before = trainer.generator_ab.get_weights()[0].copy()
    history = trainer.fit(dataset, epochs=2, steps_per_epoch=steps, verbose=0).history
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed to 0 at the end
    assert not np.array_equal(before, trainer.generator_ab.get_weights()[0])
    assert all(np.isfinite(v).all() for v in history.values())
    assert int(np.asarray(trainer.pool_a.count)) == 8


def test_cyclegan_resumes_with_its_optimizers_and_pools(digits, resume_check):
    dataset, steps = _unpaired(digits, batch_size=32)

    def make(seed):
        gan_lessons.set_seed(seed)
        return _cyclegan(_identity_generator("g_ab"), _identity_generator("g_ba"), total_steps=4 * steps,
                         pool_size=8, seed=seed)

    first, _ = resume_check(make, dataset, steps)  # the pools' images are among the weights it compares
    assert any("pool_a" in v.path for v in first.weights)


def test_without_the_cycle_loss_it_is_not_computed(digits):
    trainer = _cyclegan(_identity_generator("g_ab"), _identity_generator("g_ba"), cycle_weight=0.0)
    dataset, _ = _unpaired(digits)
    logs = trainer.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0).history
    assert logs["cycle_loss"] == [0.0]
    with pytest.raises(ValueError, match="cycle_weight"):
        _cyclegan(_identity_generator("g_ab"), _identity_generator("g_ba"), cycle_weight=-1)


def test_translation_report_of_identity_generators(digits):
    x, y = digits
    d = cyclegan.split_unpaired(x, y)
    copy = _identity_generator("copy")
    report = cyclegan.translation_report(copy, copy, d, classify=lambda images: np.zeros(len(images), int))
    assert report["cycle_error_a"] == pytest.approx(0.0, abs=1e-6)
    assert report["cycle_error_b"] == pytest.approx(0.0, abs=1e-6)
    assert report["style_error"] == pytest.approx(report["style_error_copy"], rel=1e-5)
    assert report["class_kept_b_to_a"] == pytest.approx(np.mean(d.b_labels == 0))
    # B -> A against the plain digits B was styled from: a copy scores the copy reference.
    assert np.array_equal(cyclegan.style(d.b_source), d.b)
    assert report["truth_error_b_to_a"] == pytest.approx(report["truth_error_b_to_a_copy"], rel=1e-5)
    assert report["truth_error_b_to_a_copy"] > report["truth_error_b_to_a_mean_a"] > 0
    # A translator that returns the true source digit has no truth error.
    exact = cyclegan.translation_report(copy, copy, cyclegan.UnpairedDomains(
        d.b_source, d.b_source, d.b_labels, d.b_labels, b_source=d.b_source), classify=lambda images: np.zeros(len(images), int))
    assert exact["truth_error_b_to_a"] == pytest.approx(0.0, abs=1e-6)
    # Domains read back from test_domains.npz carry no source digits, so no truth error.
    no_source = cyclegan.UnpairedDomains(d.a, d.b, d.a_labels, d.b_labels)
    assert "truth_error_b_to_a" not in cyclegan.translation_report(copy, copy, no_source,
                                                                    classify=lambda i: np.zeros(len(i), int))


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
        g = metrics.single_input(keras.saving.load_model(out / name, compile=False))
        images = np.asarray(g(test["a"][:3]))
        assert images.shape == (3, 28, 28, 1) and images.min() >= -1 and images.max() <= 1
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1] and "cycle_loss" in history
    capsys.readouterr()
    assert main(["evaluate", str(out), "--n", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("class_kept_b_to_a", "class_kept_a_to_b_to_a", "cycle_error_a", "style_error", "fid_b_to_a",
                "fid_floor"):
        assert key in result
    assert result["fid_b_to_a"] > 0 and result["fid_floor"] > 0
