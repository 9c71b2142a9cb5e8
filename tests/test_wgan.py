"""Lesson 04: Wasserstein losses, the gradient penalty, the WGAN trainer, its command-line
builds, and mode coverage on toy data."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import iterations

import gan_lessons
from gan_lessons import __main__ as cli
from gan_lessons import callbacks, data, gan, losses, metrics, recipes, wgan


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
    assert wgan.wasserstein_1d(a, b) == pytest.approx(abs(mu1 - mu2), abs=0.03 * sigma)


def test_w1_of_point_masses_and_bad_sizes():
    assert wgan.wasserstein_1d([0, 0, 0], [5, 5, 5]) == pytest.approx(5.0)
    assert wgan.wasserstein_1d([1, 2, 3], [3, 1, 2]) == 0.0
    with pytest.raises(ValueError, match="same number"):
        wgan.wasserstein_1d([1, 2], [1, 2, 3])


# ------------------------------------------------------------------------ trainer


def toy_wgan(seed=0, eager=True, **kw):
    gan_lessons.set_seed(seed)
    trainer = wgan.WGAN(wgan.toy_generator(2, (16, 16)), wgan.toy_critic((16, 16)), seed=seed, **kw)
    trainer.compile(d_optimizer=keras.optimizers.RMSprop(5e-3), g_optimizer=keras.optimizers.RMSprop(5e-3))
    trainer.run_eagerly = eager  # a few steps: eagerly unless asked (conftest.py says why)
    return trainer


@pytest.fixture(scope="module")
def ring():
    return data.gaussian_ring(512, seed=0)


def test_constraint_must_be_exactly_one():
    g, c = wgan.toy_generator(2, (8,)), wgan.toy_critic((8,))
    with pytest.raises(ValueError, match="exactly one of clip_value"):
        wgan.WGAN(g, c)
    with pytest.raises(ValueError, match="exactly one of clip_value"):
        wgan.WGAN(g, c, clip_value=0.01, gp_weight=10.0)
    with pytest.raises(ValueError, match=r"clip_value must be a number in \(0, inf\)"):
        wgan.WGAN(g, c, clip_value=-0.01)
    with pytest.raises(ValueError, match="n_critic must be a positive integer"):
        wgan.WGAN(g, c, gp_weight=10.0, n_critic=0)


def test_clipped_step_keeps_every_critic_weight_in_range(ring):
    points, _ = ring
    c = 0.01
    trainer = toy_wgan(clip_value=c, n_critic=2)
    # Glorot initial weights are far larger than c: clipping must bring them in.
    assert max(float(np.abs(v).max()) for v in trainer.critic.get_weights()) > 10 * c
    dataset, _ = data.make_dataset(points, batch_size=64, per_step=2)
    trainer.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    weights = trainer.critic.get_weights()
    assert all(float(np.abs(v).max()) <= c + 1e-7 for v in weights)
    assert any(np.isclose(np.abs(v), c).any() for v in weights)  # some were actually clipped


def test_clipping_also_holds_for_the_image_critic():
    gan_lessons.set_seed(0)
    trainer = wgan.WGAN(gan.dcgan_generator(8, filters=4), wgan.critic(filters=4), n_critic=1, clip_value=0.02)
    trainer.compile(d_optimizer=keras.optimizers.RMSprop(5e-5), g_optimizer=keras.optimizers.RMSprop(5e-5))
    trainer.run_eagerly = True  # a few steps, eagerly (conftest.py says why)
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype("float32")
    dataset, steps = data.make_dataset(images, batch_size=16, per_step=1)
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    assert all(float(np.abs(v).max()) <= 0.02 + 1e-7 for v in trainer.critic.get_weights())
    assert not any("batch_normalization" in layer.name for layer in trainer.critic.layers)


def test_wgan_gp_logs_and_learns_a_positive_gap(ring):
    points, _ = ring
    trainer = toy_wgan(gp_weight=1.0, n_critic=5, eager=False)  # quicker compiled: five critic steps a step
    dataset, steps = data.make_dataset(points, batch_size=64, per_step=5)
    history = trainer.fit(dataset, epochs=2, steps_per_epoch=steps, verbose=0).history
    assert {"c_loss", "g_loss", "wasserstein", "gp"} <= set(history)
    assert all(np.isfinite(v).all() for v in history.values())
    # The critic separates real from (still poor) fakes: its estimate of W1 is positive.
    assert history["wasserstein"][-1] > 0
    # The logged critic loss is the penalty minus the estimate, up to averaging order.
    assert history["c_loss"][-1] == pytest.approx(history["gp"][-1] - history["wasserstein"][-1], abs=1e-4)
    assert iterations(trainer.d_optimizer) == 5 * 2 * steps and iterations(trainer.g_optimizer) == 2 * steps


def test_each_critic_step_trains_on_its_own_batch(ring):
    points, _ = ring
    trainer = toy_wgan(gp_weight=1.0, n_critic=3)
    critic, seen = trainer.critic, []

    class Spy:  # records what the trainer shows the critic (train_step runs eagerly here)
        trainable_variables = critic.trainable_variables

        def __call__(self, x, training=False):
            seen.append(np.asarray(x))
            return critic(x, training=training)

    object.__setattr__(trainer, "discriminator", Spy())  # the critic is lesson 01's discriminator
    stacked = points[:3 * 16].reshape(3, 16, 2)
    trainer.train_step(tf.constant(stacked))
    for i in range(3):
        assert sum(np.array_equal(x, stacked[i]) for x in seen) == 1  # each batch once, as real samples
    assert all(x.shape == (16, 2) for x in seen)  # the fakes and interpolates match it in size
    with pytest.raises(ValueError, match=r"n_critic=3 stacked batches .* got shape \(16, 2\)"):
        trainer.train_step(tf.constant(points[:16]))


def test_same_seed_same_wgan():
    points, _ = data.gaussian_ring(256, seed=1)
    weights = []
    for _ in range(2):
        trainer = toy_wgan(seed=5, gp_weight=0.1, n_critic=2, eager=False)  # compiled, as a reader's rerun
        dataset, steps = data.make_dataset(points, batch_size=64, seed=5, per_step=2)
        trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        weights.append(trainer.generator.get_weights()[0])
    assert np.array_equal(weights[0], weights[1])


def test_wgan_gp_resumes_with_its_optimizers_state(resume_check):
    digits, _ = data.load_mnist("train", source="bundled", limit=96, verbose=False)
    dataset, steps = data.make_dataset(digits, batch_size=16, per_step=2)

    def make(seed):
        gan_lessons.set_seed(seed)
        trainer = wgan.WGAN(gan.dcgan_generator(8, filters=4), wgan.critic(4, refine=True), n_critic=2,
                            gp_weight=10.0, seed=seed)
        trainer.compile(d_optimizer=keras.optimizers.Adam(5e-4, 0.5, 0.9),
                        g_optimizer=keras.optimizers.Adam(5e-4, 0.5, 0.9))
        return trainer

    first, _ = resume_check(make, dataset, steps, extra=lambda: [callbacks.GeneratorAverage(0.99)])
    assert iterations(first.d_optimizer) == 2 * 2 * steps  # two critic steps per step


def test_nan_in_the_data_stops_training_with_a_message(ring, capsys):
    points, _ = ring
    trainer = toy_wgan(gp_weight=10.0, n_critic=2)
    stop = callbacks.StopOnNaN()
    dataset, steps = data.make_dataset(np.full_like(points, np.nan), batch_size=64, per_step=2)
    history = trainer.fit(dataset, epochs=3, steps_per_epoch=steps, verbose=0, callbacks=[stop])
    assert stop.stopped_at == "step 1"
    assert "became nan" in stop.message and "Lower the learning rate" in stop.message
    assert stop.message in capsys.readouterr().out
    assert trainer.stop_training and len(history.history.get("c_loss", [])) <= 1


def test_a_run_stopped_by_nan_is_marked_failed_and_not_resumed(tmp_path, monkeypatch, capsys):
    real_load = data.load_mnist

    def nan_digits(*args, **kwargs):
        x, y = real_load(*args, **kwargs)
        return np.full_like(x, np.nan), y

    monkeypatch.setattr(data, "load_mnist", nan_digits)
    out = tmp_path / "run"
    args = ["train", "wgan-gp", "--out", str(out), "--quick", "--epochs", "2", "--batch-size", "64"]
    assert cli.main(args) == cli.EXIT_FAILED == 1
    printed = capsys.readouterr().out
    assert "became nan" in printed and "failed" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "became nan" in run["failure"]
    assert not (out / "generator.keras").exists()
    # The same command again does not pretend to resume a run whose checkpoint is gone.
    monkeypatch.setattr(data, "load_mnist", real_load)
    assert cli.main(args) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "failed" in err and "cannot be resumed" in err and "another folder" in err
    assert not (out / "generator.keras").exists()


# ----------------------------------------------------------- command-line builds


@pytest.mark.parametrize("name, constraint", [("wgan", "clip_value"), ("wgan-gp", "gp_weight")])
def test_the_command_line_wgans_follow_the_generator_contract(name, constraint):
    trainer, extra = recipes.RECIPES[name].build(seed=0, total_steps=10)
    assert isinstance(trainer, wgan.WGAN) and trainer.n_critic == 5
    assert getattr(trainer, constraint) is not None
    assert trainer.generator.input_shape == (None, recipes.LATENT_DIM)
    images = np.asarray(trainer.generator(np.zeros((4, recipes.LATENT_DIM), "float32")))
    assert images.shape == (4, 28, 28, 1) and np.all(np.abs(images) <= 1.0)
    assert set(recipes.RECIPES[name].keys) <= {m.name for m in trainer.metrics}
    # Every step gets five batches of 32, one per critic step; an epoch keeps one step per batch.
    feed = recipes.RECIPES[name].feed
    dataset, steps = feed.stream(feed.load(True, "auto")[0], {"batch_size": 32, "seed": 0})
    assert steps == recipes.QUICK_DIGITS // 32 and next(iter(dataset)).shape == (5, 32, 28, 28, 1)
    if name == "wgan-gp":
        assert not any("batch_normalization" in layer.name for layer in trainer.critic.layers)
        assert trainer.d_optimizer.beta_2 == 0.9 and trainer.gp_weight == 10.0
        assert [type(c) for c in extra] == [callbacks.GeneratorAverage]


# -------------------------------------------------------------------- toy measure


def test_real_ring_samples_cover_every_mode():
    points, centres = data.gaussian_ring(4000, modes=8, std=0.02, seed=3)
    result = metrics.mode_coverage(points, centres, std=0.02)
    assert result["modes_covered"] == 8 == result["modes"]
    # In 2-D, P(|x - c| <= 3 sigma) = 1 - exp(-9/2) = 0.989.
    assert result["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)


def test_a_collapsed_generator_covers_one_mode():
    _, centres = data.gaussian_grid(10, side=5, std=0.05)
    collapsed = centres[7] + np.random.default_rng(0).normal(0, 0.01, (1000, 2))
    result = metrics.mode_coverage(collapsed, centres, std=0.05)
    assert result["modes_covered"] == 1 and result["modes"] == 25
    assert result["counts"][7] == 1000 and result["high_quality"] == 1.0
    # Points between the modes are low quality and cover nothing.
    between = np.zeros((100, 2)) + np.array([1.0, 1.0])
    assert metrics.mode_coverage(between, centres, std=0.05)["high_quality"] == 0.0


def test_mode_coverage_checks_its_arguments():
    _, centres = data.gaussian_ring(10)
    with pytest.raises(ValueError, match="std must be a number"):
        metrics.mode_coverage(np.zeros((5, 2)), centres, std=0.0)
    with pytest.raises(ValueError, match="centres"):
        metrics.mode_coverage(np.zeros((5, 3)), centres, std=0.02)


def _lesson_best_critic_1d():
    """Lesson 04's ``best_critic_1d``, taken from the notebook cell that defines it (the cell also prints)."""
    import ast
    import json
    from pathlib import Path

    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "04_wgan.ipynb"
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def best_critic_1d(" in source:
            [node] = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "best_critic_1d"]
            namespace = {"np": np}
            exec(compile(ast.Module([node], []), "04_wgan.ipynb", "exec"), namespace)
            return namespace["best_critic_1d"]
    raise AssertionError("04_wgan.ipynb should define best_critic_1d")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w1_is_the_area_between_the_cdfs_and_the_best_critics_gap(seed):
    """Lesson 04's duality check in 1-D, with the lesson's own code: the sorted matching, the area
    between the empirical CDFs and the gap of the critic with slope sign(F_q - F_p) give the same W1."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.0, 1.0, 40), rng.normal(1.0, 0.5, 40)
    grid, values, area = _lesson_best_critic_1d()(a, b)
    widths = np.diff(grid)
    gap = np.interp(a, grid, values).mean() - np.interp(b, grid, values).mean()
    assert area == pytest.approx(wgan.wasserstein_1d(a, b), rel=1e-9)
    assert gap == pytest.approx(area, rel=1e-9)
    assert np.all(np.abs(np.diff(values)) <= widths + 1e-12)  # 1-Lipschitz
