"""CycleGAN (lesson 05): its digit domains (digit_tasks), builders, image pool, schedule and
trainer (on one device, two replicas, in float16 and under XLA), bad arguments, report, CLI."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons
from gan_lessons import checks, cyclegan, data, digit_tasks, distribute, losses, metrics
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
    first, second = digit_tasks.style(x[:20]), digit_tasks.style(x[:20])
    assert np.array_equal(first, second)
    assert first.shape == (20, 28, 28, 1) and first.dtype == np.float32
    assert first.min() >= -1 and first.max() <= 1
    # Each image is styled on its own: alone or in a batch, the same answer.
    assert np.array_equal(digit_tasks.style(x[7]), first[7])
    # The style really changes the image: the background turns to light paper.
    assert np.allclose(first[:, 0, 0, 0], 2 * digit_tasks.PAPER - 1)
    assert np.mean(np.abs(first - x[:20])) > 0.5


def test_the_two_domains_share_no_source_digit(digits):
    x, y = digits
    d = digit_tasks.split_unpaired(x, y)
    assert set(d.a_index).isdisjoint(d.b_index)
    assert sorted(np.concatenate([d.a_index, d.b_index])) == list(range(len(x)))
    assert np.array_equal(d.a, x[d.a_index]) and np.array_equal(d.a_labels, y[d.a_index])
    assert np.array_equal(d.b, digit_tasks.style(x[d.b_index])) and np.array_equal(d.b_labels, y[d.b_index])
    # Both sides hold every class about equally often.
    assert np.all(np.abs(np.bincount(d.a_labels, minlength=10) - np.bincount(d.b_labels, minlength=10)) <= 1)
    # No B image is the styled twin of an A image.
    twins = digit_tasks.style(d.a)
    assert min(np.abs(twins - b).max() for b in d.b[:20]) > 0


def test_held_out_domains_come_from_the_test_split():
    train = digit_tasks.load_digit_domains("train", source="bundled", verbose=False)
    test = digit_tasks.load_digit_domains("test", source="bundled", verbose=False)
    assert len(train.a) + len(train.b) == 4000 and len(test.a) + len(test.b) == 1000
    train_a = {img.tobytes() for img in train.a}
    assert not any(img.tobytes() in train_a for img in test.a)


def test_saved_domains_keep_the_contract_arrays(digits, tmp_path):
    x, y = digits
    d = digit_tasks.split_unpaired(x, y)
    d.save(tmp_path / "test_domains.npz")
    assert set(np.load(tmp_path / "test_domains.npz").files) == {"a", "a_labels", "b", "b_labels"}
    back = digit_tasks.UnpairedDomains.load(tmp_path / "test_domains.npz")
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


def test_the_pool_keeps_its_rules_under_xla():
    """Compiled with XLA (whose random numbers differ from the CPU kernels'), the pool fills,
    then swaps, and loses nothing."""
    pool = cyclegan.ImagePool(size=6, seed=4)
    xla = tf.function(lambda images: pool(images), jit_compile=True)
    assert _numbers(xla(_batch([1, 2, 3, 4, 5, 6]))) == [1, 2, 3, 4, 5, 6]
    assert sorted(_numbers(pool.images)) == [1, 2, 3, 4, 5, 6]
    swapped = 0
    for step in range(1, 6):
        fresh = 10 * step + np.arange(1, 5)
        before = _numbers(pool.images)
        out = _numbers(xla(_batch(fresh)))
        assert sorted(before + fresh.tolist()) == sorted(out + _numbers(pool.images))
        swapped += sum(v < 10 * step for v in out)
    assert int(pool.count) == 6 and swapped > 0


def test_on_two_replicas_each_swaps_its_own_and_the_first_replicas_writes_are_kept():
    strategy, _ = distribute.make_strategy("mirrored")
    with strategy.scope():
        pool = distribute.replica_seeds(cyclegan.ImagePool(size=8, seed=0))
    step = tf.function(lambda images: pool(images))

    def run(values):  # replica 0 gets the first half of the batch, replica 1 the second
        batch = next(iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(_batch(values)).batch(len(values)))))
        return [_numbers(out) for out in strategy.experimental_local_results(strategy.run(step, args=(batch,)))]

    def stored():
        copies = [_numbers(copy) for copy in pool.images.value.values]
        assert copies[0] == copies[1] and [int(c) for c in pool.count.value.values] == [8, 8]  # in step
        return copies[0]

    run(np.arange(1, 17))
    assert sorted(stored()) == list(range(1, 9))  # replica 0's images
    swapped_alike = []
    for k in range(1, 4):
        fresh = 100 * k + np.arange(16)
        before = stored()
        first, second = run(fresh)
        assert sorted(before + fresh[:8].tolist()) == sorted(first + stored())  # replica 0: nothing lost
        assert {v for v in second if v < 100 * k} <= set(before)  # replica 1 drew from the same store
        swapped_alike.append([v < 100 * k for v in first] == [v < 100 * k for v in second])
    assert not all(swapped_alike)  # each replica flips its own coins


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
    trainer.run_eagerly = True  # a few steps, eagerly (conftest.py says why)
    return trainer


def _unpaired(digits, batch_size=16):
    d = digit_tasks.split_unpaired(*digits)
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


def test_discriminators_that_call_everything_real_leave_the_cycle_loss_alone(digits):
    """Lesson 05's "cycle alone" row: judges that score every image 1 give the generators an adversarial loss of
    0 with zero gradient, so one step moves them as the cycle loss alone would, and the judges do not change."""
    def blind_judge(name):
        image = keras.Input(shape=(28, 28, 1))
        scores = keras.layers.Conv2D(1, 4, strides=4)(image)
        return keras.Model(image, keras.layers.Rescaling(0.0, offset=1.0)(scores), name=name)

    d = digit_tasks.split_unpaired(*digits)
    real_a, real_b = tf.constant(d.a[:4]), tf.constant(d.b[:4])
    gan_lessons.set_seed(0)
    g_ab, g_ba = cyclegan.resnet_generator(4, 1, name="g_ab"), cyclegan.resnet_generator(4, 1, name="g_ba")
    variables = g_ab.trainable_variables + g_ba.trainable_variables
    start = [np.asarray(v) for v in variables]
    trainer = cyclegan.CycleGAN(g_ab, g_ba, blind_judge("d_a"), blind_judge("d_b"), identity_weight=0.0)
    trainer.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    judges = trainer.discriminator_a.weights + trainer.discriminator_b.weights
    judges_before = [np.asarray(w) for w in judges]
    logs = trainer.train_step((real_a, real_b))
    assert float(logs["adversarial_loss"]) == 0.0 and float(logs["cycle_loss"]) > 0.0
    for before, after in zip(judges_before, judges):
        np.testing.assert_array_equal(before, np.asarray(after))
    trained = [np.asarray(v) for v in variables]
    # the same SGD step on the cycle loss alone, by hand, from the same start
    for variable, value in zip(variables, start):
        variable.assign(value)
    with tf.GradientTape() as tape:
        cycle = (losses.cycle_loss(real_a, g_ba(g_ab(real_a, training=True), training=True))
                 + losses.cycle_loss(real_b, g_ab(g_ba(real_b, training=True), training=True)))
    for after, value, gradient in zip(trained, start, tape.gradient(cycle, variables)):
        np.testing.assert_allclose(after, value - 0.1 * np.asarray(gradient), rtol=1e-4, atol=1e-6)


class _ZeroScale(keras.optimizers.SGD):
    """SGD whose scale_loss scales every loss to 0: the weights it trains stay as they are."""

    def scale_loss(self, loss):
        return 0.0 * loss


@pytest.mark.parametrize("frozen", ["d_optimizer", "g_optimizer"])
def test_each_player_takes_its_gradients_of_its_optimizers_scaled_loss(digits, frozen):
    """Where the command line acts (several replicas, float16): optimizer.scale_loss."""
    trainer = cyclegan.CycleGAN(**_networks(), pool_size=2)
    trainer.compile(**{"d_optimizer": keras.optimizers.SGD(0.1), "g_optimizer": keras.optimizers.SGD(0.1),
                       frozen: _ZeroScale(0.1)})
    players = {"d_optimizer": (trainer.discriminator_a, trainer.discriminator_b),
               "g_optimizer": (trainer.generator_ab, trainer.generator_ba)}
    players = {name: [w for net in nets for w in net.trainable_weights] for name, nets in players.items()}
    before = {name: [np.array(w) for w in weights] for name, weights in players.items()}
    trainer.train_step((tf.constant(digits[0][:4]), tf.constant(digit_tasks.style(digits[0][4:8]))))
    for name, weights in players.items():
        same = [np.array_equal(b, np.array(w)) for b, w in zip(before[name], weights)]
        assert all(same) if name == frozen else not any(same), name


def _networks(**names):
    """Small CycleGAN networks, some replaced by ``names``."""
    return {"generator_ab": cyclegan.resnet_generator(4, 0, name="g_ab"),
            "generator_ba": cyclegan.resnet_generator(4, 0, name="g_ba"),
            "discriminator_a": cyclegan.patchgan_discriminator(4, name="d_a"),
            "discriminator_b": cyclegan.patchgan_discriminator(4, name="d_b"), **names}


def _small_critic():
    x = keras.Input((14, 14, 1))
    return keras.Model(x, keras.layers.Conv2D(1, 3)(x), name="small")


@pytest.mark.parametrize("call, message", [
    (lambda: digit_tasks.style(np.zeros((2, 28, 28, 3))),
     "images must be an array of shape (N, H, W, 1) or (H, W, 1); got shape (2, 28, 28, 3)."),
    (lambda: digit_tasks.style("digits"), "images must be an array of shape (N, H, W, 1) or (H, W, 1); got 'digits'."),
    (lambda: digit_tasks.dilate(np.zeros((2, 5, 5)), radius=-1), "radius must be a non-negative integer; got -1."),
    (lambda: digit_tasks.split_unpaired(np.zeros((4, 28, 28, 1)), [0, 1, 2]),
     "labels must hold 4 whole numbers, one per image; got 3 of type int64."),
    (lambda: digit_tasks.split_unpaired(np.zeros((1, 28, 28, 1)), [0]),
     "images must hold at least 2 digits, one for each domain; got 1."),
    (lambda: digit_tasks.split_unpaired(np.zeros((2, 28, 28, 1)), [0, 1], seed=-1),
     "seed must be an integer from 0 to 2**32 - 1; got -1."),
    (lambda: digit_tasks.load_digit_domains(limit=0), "limit must be a positive integer; got 0."),
    (lambda: digit_tasks.UnpairedDomains(*[np.zeros((2, 28, 28, 1))] * 2, [0, 1], [0, 1]).head(-1),
     "n must be a positive integer; got -1."),
    (lambda: digit_tasks.UnpairedDomains(np.zeros((2, 28, 28)), np.zeros((2, 28, 28, 1)), [0, 1], [0, 1]),
     "a must be an array of shape (N, H, W, 1); got shape (2, 28, 28)."),
    (lambda: digit_tasks.UnpairedDomains(*[np.zeros((2, 28, 28, 1))] * 2, [0, 1], [0, 1, 2]),
     "b_labels must hold 2 whole numbers, one per image; got 3 of type int64."),
    (lambda: cyclegan.resnet_generator(residual_blocks=-1), "residual_blocks must be a non-negative integer; got -1."),
    (lambda: cyclegan.patchgan_discriminator(filters=0), "filters must be a positive integer; got 0."),
    (lambda: cyclegan.ImagePool(size=-1), "size must be a non-negative integer; got -1."),
    (lambda: cyclegan.ImagePool(seed="zero"), "seed must be an integer from 0 to 2**32 - 1; got 'zero'."),
    (lambda: cyclegan.ImagePool(image_shape=(28, 0)), "image_shape must be a non-empty sequence of positive "
                                                      "integers; got (28, 0)."),
    (lambda: cyclegan.LinearDecay(1.0, total_steps=2.5), "total_steps must be a positive integer; got 2.5."),
    (lambda: cyclegan.LinearDecay(0, total_steps=10), "initial_learning_rate must be a number in (0, inf); got 0."),
    (lambda: cyclegan.LinearDecay(1.0, 10, constant_fraction=1), "constant_fraction must be a number in [0, 1); "
                                                                 "got 1."),
    (lambda: cyclegan.CycleGAN(**_networks(), cycle_weight=-1), "cycle_weight must be a number in [0, inf); got -1."),
    (lambda: cyclegan.CycleGAN(**_networks(), identity_weight="5"),
     "identity_weight must be a number in [0, inf); got '5'."),
    (lambda: cyclegan.CycleGAN(**_networks(), pool_size=1.5), "size must be a non-negative integer; got 1.5."),
    (lambda: cyclegan.CycleGAN(**_networks(), seed=None), "seed must be an integer from 0 to 2**32 - 1; got None."),
    (lambda: cyclegan.CycleGAN(**_networks(discriminator_b=_small_critic())),
     "the generator 'g_ab' makes images of shape (28, 28, 1), but the discriminator 'small' takes inputs of shape "
     "(14, 14, 1); build them for the same image shape."),
    (lambda: cyclegan.CycleGAN(**_networks(discriminator_a=_small_critic())),
     "the generator 'g_ba' makes images of shape (28, 28, 1), but the discriminator 'small' takes inputs of shape "
     "(14, 14, 1); build them for the same image shape."),
    (lambda: cyclegan.translation_report(_identity_generator("copy"), _identity_generator("copy"), ("a", "b")),
     "domains must be UnpairedDomains (digit_tasks.load_digit_domains); got tuple."),
    (lambda: cyclegan.translation_report("copy", _identity_generator("copy"), None),
     "generator_ab must be callable (a network or a function); got 'copy'."),
])
def test_bad_arguments_get_one_sentence(call, message):
    with pytest.raises(checks.BadArgument, match="^" + re.escape(message) + "$"):
        call()


def test_domains_without_their_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "half.npz", a=np.zeros((2, 28, 28, 1)), a_labels=[0, 1])
    with pytest.raises(checks.BadArgument, match=r"half\.npz has no array b, b_labels; it needs a, a_labels, b, "
                                                 r"b_labels\.$"):
        digit_tasks.UnpairedDomains.load(tmp_path / "half.npz")


def test_translation_report_of_identity_generators(digits):
    x, y = digits
    d = digit_tasks.split_unpaired(x, y)
    copy = _identity_generator("copy")
    report = cyclegan.translation_report(copy, copy, d, classify=lambda images: np.zeros(len(images), int))
    # Any callable translator will do, a network or not (lesson 05 measures composed ones).
    assert cyclegan.translation_report(lambda images, training=False: images, copy, d,
                                       classify=lambda images: np.zeros(len(images), int)) == report
    assert report["cycle_error_a"] == pytest.approx(0.0, abs=1e-6)
    assert report["cycle_error_b"] == pytest.approx(0.0, abs=1e-6)
    assert report["style_error"] == pytest.approx(report["style_error_copy"], rel=1e-5)
    assert report["class_kept_b_to_a"] == pytest.approx(np.mean(d.b_labels == 0))
    # B -> A against the plain digits B was styled from: a copy scores the copy reference.
    assert np.array_equal(digit_tasks.style(d.b_source), d.b)
    assert report["truth_error_b_to_a"] == pytest.approx(report["truth_error_b_to_a_copy"], rel=1e-5)
    assert report["truth_error_b_to_a_copy"] > report["truth_error_b_to_a_mean_a"] > 0
    # A translator that returns the true source digit has no truth error.
    exact = cyclegan.translation_report(copy, copy, digit_tasks.UnpairedDomains(
        d.b_source, d.b_source, d.b_labels, d.b_labels, b_source=d.b_source),
        classify=lambda images: np.zeros(len(images), int))
    assert exact["truth_error_b_to_a"] == pytest.approx(0.0, abs=1e-6)
    # Domains read back from test_domains.npz carry no source digits, so no truth error.
    no_source = digit_tasks.UnpairedDomains(d.a, d.b, d.a_labels, d.b_labels)
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
