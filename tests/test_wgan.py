"""Lesson 04: Wasserstein losses, the gradient penalty, the WGAN trainer and its recipes."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons
from gan_lessons import __main__ as cli
from gan_lessons import callbacks, data, losses, models, recipes, toy, trainers


def _linear_critic(w):
    """f(x) = w . x (no bias): its gradient is w everywhere."""
    w = np.asarray(w, dtype=np.float32)
    x = keras.Input(shape=(len(w),))
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(x, dense(x))
    dense.set_weights([w.reshape(-1, 1)])
    return model


@pytest.mark.parametrize("w", [[3.0, 4.0], [0.3, -0.4], [0.0, 2.0, 0.0, 0.0]])
def test_gradient_penalty_of_a_linear_critic(w):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(32, len(w))).astype("float32")
    fake = rng.normal(size=(32, len(w))).astype("float32")
    expected = 10.0 * (np.linalg.norm(w) - 1.0) ** 2
    got = float(losses.gradient_penalty(_linear_critic(w), real, fake, weight=10.0))
    assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_zero_for_a_unit_gradient_on_images():
    w = np.random.default_rng(1).normal(size=28 * 28)
    w /= np.linalg.norm(w)
    x = keras.Input(shape=(28, 28, 1))
    dense = keras.layers.Dense(1)
    critic = keras.Model(x, dense(keras.layers.Flatten()(x)))
    dense.set_weights([w.reshape(-1, 1).astype("float32"), np.array([0.7], "float32")])
    real = np.random.default_rng(2).uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
    fake = np.zeros_like(real)
    assert float(losses.gradient_penalty(critic, real, fake, weight=10.0)) < 1e-6
    # Twice the slope: lambda (2 - 1)^2 = lambda.
    dense.set_weights([2 * w.reshape(-1, 1).astype("float32"), np.array([0.7], "float32")])
    assert float(losses.gradient_penalty(critic, real, fake, weight=10.0)) == pytest.approx(10.0, rel=1e-5)


def test_wasserstein_losses_signs():
    real, fake = tf.constant([[2.0], [4.0]]), tf.constant([[-1.0], [1.0]])
    assert float(losses.critic_loss(real, fake)) == pytest.approx(0.0 - 3.0)  # E f(G(z)) - E f(x)
    assert float(losses.wasserstein_generator_loss(fake)) == pytest.approx(0.0)
    assert float(losses.wasserstein_generator_loss(tf.constant([[1.0], [2.0]]))) == pytest.approx(-1.5)


@pytest.mark.parametrize("mu1, mu2, sigma", [(0.0, 3.0, 1.0), (-1.0, 0.5, 0.3), (2.0, 2.0, 2.0)])
def test_w1_of_two_gaussians_with_the_same_sigma_is_the_shift(mu1, mu2, sigma):
    rng = np.random.default_rng(0)
    a = rng.normal(mu1, sigma, 50_000)
    b = rng.normal(mu2, sigma, 50_000)
    assert losses.wasserstein_1d(a, b) == pytest.approx(abs(mu1 - mu2), abs=0.03 * sigma)


def test_w1_of_point_masses_and_bad_sizes():
    assert losses.wasserstein_1d([0, 0, 0], [5, 5, 5]) == pytest.approx(5.0)
    assert losses.wasserstein_1d([1, 2, 3], [3, 1, 2]) == 0.0
    with pytest.raises(ValueError, match="same number"):
        losses.wasserstein_1d([1, 2], [1, 2, 3])


# ------------------------------------------------------------------------ trainer


def _toy_wgan(seed=0, **kw):
    gan_lessons.set_seed(seed)
    gen, critic = models.toy_generator(2, (16, 16)), models.toy_critic((16, 16))
    wgan = trainers.WGAN(gen, critic, seed=seed, **kw)
    wgan.compile(keras.optimizers.RMSprop(5e-3), keras.optimizers.RMSprop(5e-3))
    return wgan


@pytest.fixture(scope="module")
def ring():
    points, centres = data.gaussian_ring(512, seed=0)
    return points, centres


def test_constraint_must_be_exactly_one():
    gen, critic = models.toy_generator(2, (8,)), models.toy_critic((8,))
    with pytest.raises(ValueError, match="exactly one of clip_value"):
        trainers.WGAN(gen, critic)
    with pytest.raises(ValueError, match="exactly one of clip_value"):
        trainers.WGAN(gen, critic, clip_value=0.01, gp_weight=10.0)
    with pytest.raises(ValueError, match="clip_value must be a positive number"):
        trainers.WGAN(gen, critic, clip_value=-0.01)
    with pytest.raises(ValueError, match="n_critic must be a positive integer"):
        trainers.WGAN(gen, critic, gp_weight=10.0, n_critic=0)


def test_clipped_step_keeps_every_critic_weight_in_range(ring):
    points, _ = ring
    c = 0.01
    wgan = _toy_wgan(clip_value=c, n_critic=2)
    # Glorot initial weights are far larger than c: clipping must bring them in.
    assert max(float(np.abs(v).max()) for v in wgan.critic.get_weights()) > 10 * c
    wgan.fit(data.make_dataset(points, batch_size=64).take(1), epochs=1, verbose=0)
    weights = wgan.critic.get_weights()
    assert all(float(np.abs(v).max()) <= c + 1e-7 for v in weights)
    assert any(np.isclose(np.abs(v), c).any() for v in weights)  # some were actually clipped


def test_clipping_also_holds_for_the_image_critic():
    gan_lessons.set_seed(0)
    wgan = trainers.WGAN(models.dcgan_generator(8, filters=4), models.critic(filters=4), n_critic=1,
                         clip_value=0.02)
    wgan.compile(keras.optimizers.RMSprop(5e-5), keras.optimizers.RMSprop(5e-5))
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype("float32")
    wgan.fit(data.make_dataset(images, batch_size=16), epochs=1, verbose=0)
    assert all(float(np.abs(v).max()) <= 0.02 + 1e-7 for v in wgan.critic.get_weights())


def test_wgan_gp_logs_and_learns_a_positive_gap(ring):
    points, _ = ring
    wgan = _toy_wgan(gp_weight=1.0, n_critic=5)
    history = wgan.fit(data.make_dataset(points, batch_size=5 * 64, passes=5), epochs=2, verbose=0).history
    assert {"c_loss", "g_loss", "wasserstein", "gp"} <= set(history)
    assert all(np.isfinite(v).all() for v in history.values())
    # The critic separates real from (still poor) fakes: its estimate of W1 is positive.
    assert history["wasserstein"][-1] > 0
    # The logged critic loss is the penalty minus the estimate, up to averaging order.
    assert history["c_loss"][-1] == pytest.approx(history["gp"][-1] - history["wasserstein"][-1], abs=1e-4)


def test_each_critic_step_trains_on_its_own_slice_of_the_batch(ring):
    points, _ = ring
    wgan = _toy_wgan(gp_weight=1.0, n_critic=3)
    critic, seen = wgan.critic, []

    class Spy:  # records what the trainer shows the critic (train_step runs eagerly here)
        trainable_variables = critic.trainable_variables

        def __call__(self, x, training=False):
            seen.append(np.asarray(x))
            return critic(x, training=training)

    object.__setattr__(wgan, "critic", Spy())
    stacked = points[:3 * 16]
    wgan.train_step(tf.constant(stacked))
    for i in range(3):
        part = stacked[16 * i:16 * (i + 1)]
        assert sum(np.array_equal(x, part) for x in seen) == 1  # each slice once, as real samples
    assert all(len(x) == 16 for x in seen)  # never the whole stacked batch, the fakes match in size
    with pytest.raises(ValueError, match="n_critic=3 batches"):
        wgan.train_step(tf.constant(points[:16]))


def test_same_seed_same_wgan():
    points, _ = data.gaussian_ring(256, seed=1)
    weights = []
    for _ in range(2):
        wgan = _toy_wgan(seed=5, gp_weight=0.1, n_critic=2)
        wgan.fit(data.make_dataset(points, batch_size=64, seed=5), epochs=1, verbose=0)
        weights.append(wgan.generator.get_weights()[0])
    assert np.array_equal(weights[0], weights[1])


def test_nan_in_the_data_stops_training_with_a_message(ring, capsys):
    points, _ = ring
    bad = points.copy()
    bad[10] = np.nan
    wgan = _toy_wgan(gp_weight=10.0, n_critic=2)
    stop = callbacks.StopOnNaN()
    history = wgan.fit(data.make_dataset(bad, batch_size=64, shuffle=False), epochs=3, verbose=0,
                       callbacks=[stop])
    assert stop.stopped_at == "step 1"
    assert "became nan" in stop.message and "Lower the learning rate" in stop.message
    assert stop.message in capsys.readouterr().out
    assert wgan.stop_training and len(history.history.get("c_loss", [])) <= 1


def test_cli_exits_1_with_the_message_when_losses_become_nan(tmp_path, monkeypatch, capsys):
    recipe = recipes.get("wgan-gp")

    def nan_digits(quick):
        x = np.full((128, 28, 28, 1), np.nan, dtype="float32")
        return x, np.zeros(128, dtype="int64")

    monkeypatch.setattr(recipe, "load_data", nan_digits)
    monkeypatch.setattr(recipe, "g_filters", 4)
    monkeypatch.setattr(recipe, "c_filters", 4)
    code = cli.main(["train", "wgan-gp", "--out", str(tmp_path / "run"), "--quick", "--epochs", "1",
                     "--batch-size", "64"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_FAILED == 1
    assert "is not finished" in out and "became nan" in out
    assert not (tmp_path / "run" / "generator.keras").exists()


# ------------------------------------------------------------------------ recipes


@pytest.mark.parametrize("name, constraint", [("wgan", "clip_value"), ("wgan-gp", "gp_weight")])
def test_wgan_recipes_follow_the_generator_contract(name, constraint):
    recipe = recipes.get(name)
    trainer = recipe.build(seed=0)
    assert isinstance(trainer, trainers.WGAN)
    assert getattr(trainer, constraint) is not None
    assert trainer.generator.input_shape == (None, recipe.latent_dim)
    assert trainer.generator.output_shape == (None, 28, 28, 1)
    noise = recipe.sample_inputs(trainer, seed=0, n=4)
    images = recipe.sample_images(trainer, noise)
    assert images.shape == (4, 28, 28, 1) and np.all(np.abs(images) <= 1.0)
    assert set(recipe.monitor_keys) <= {m.name for m in trainer.metrics}
    # Every step gets n_critic batches, one per critic step; an epoch keeps one step per batch.
    digits = np.zeros((320, 28, 28, 1), dtype="float32")
    batches = recipe.make_dataset(digits, None, 32, seed=0)
    assert len(batches) == 320 // 32 and next(iter(batches)).shape[0] == trainer.n_critic * 32
    if name == "wgan-gp":
        assert not any("batch_normalization" in layer.name for layer in trainer.critic.layers)
        assert trainer.d_optimizer.beta_2 == 0.9 and trainer.gp_weight == 10.0


# -------------------------------------------------------------------- toy measure


def test_real_ring_samples_cover_every_mode():
    points, centres = data.gaussian_ring(4000, modes=8, std=0.02, seed=3)
    result = toy.mode_coverage(points, centres, std=0.02)
    assert result["modes_covered"] == 8 == result["modes"]
    # In 2-D, P(|x - c| <= 3 sigma) = 1 - exp(-9/2) = 0.989.
    assert result["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)


def test_a_collapsed_generator_covers_one_mode():
    _, centres = data.gaussian_grid(10, side=5, std=0.05)
    collapsed = centres[7] + np.random.default_rng(0).normal(0, 0.01, (1000, 2))
    result = toy.mode_coverage(collapsed, centres, std=0.05)
    assert result["modes_covered"] == 1 and result["modes"] == 25
    assert result["counts"][7] == 1000 and result["high_quality"] == 1.0
    # Points between the modes are low quality and cover nothing.
    between = np.zeros((100, 2)) + np.array([1.0, 1.0])
    assert toy.mode_coverage(between, centres, std=0.05)["high_quality"] == 0.0


def test_mode_coverage_checks_its_arguments():
    _, centres = data.gaussian_ring(10)
    with pytest.raises(ValueError, match="std must be a positive number"):
        toy.mode_coverage(np.zeros((5, 2)), centres, std=0.0)
    with pytest.raises(ValueError, match="centres must have shape"):
        toy.mode_coverage(np.zeros((5, 3)), centres, std=0.02)


def test_wgan_keeps_a_weight_average_when_asked(ring):
    g, c = models.toy_generator(2, (16,)), models.toy_critic((16,))
    wgan = trainers.WGAN(g, c, n_critic=1, gp_weight=1.0, average_momentum=0.9, seed=0)
    wgan.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2))
    start = wgan.generator_average.get_weights()
    wgan.fit(data.make_dataset(ring[0], batch_size=64, seed=0), epochs=1, verbose=0)
    moved = [not np.allclose(a, s) for a, s in zip(wgan.generator_average.get_weights(), start)]
    differs = [not np.allclose(a, w) for a, w in zip(wgan.generator_average.get_weights(), g.get_weights())]
    assert any(moved) and any(differs)
    assert trainers.WGAN(g, c, gp_weight=1.0).generator_average is None
