"""Lessons 01-02: the MLP and DCGAN builders, the GAN trainer and the callbacks it trains with."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import Interrupt, iterations

import gan_lessons
from gan_lessons import callbacks, data, gan


@pytest.fixture(scope="module")
def digits():
    return data.load_mnist("train", source="bundled", limit=256, verbose=False)


def small_gan(seed=0, d_steps=1, eager=True):
    gan_lessons.set_seed(seed)
    trainer = gan.GAN(gan.dcgan_generator(16, filters=8), gan.dcgan_discriminator(filters=8), d_steps=d_steps,
                      seed=seed)
    trainer.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    trainer.run_eagerly = eager  # a few steps: eagerly unless asked (conftest.py says why)
    return trainer


@pytest.mark.parametrize("builder, shape", [
    (lambda: gan.mlp_generator(latent_dim=16), (None, 28, 28, 1)),
    (lambda: gan.dcgan_generator(latent_dim=16, filters=8), (None, 28, 28, 1)),
    (lambda: gan.mlp_discriminator(), (None, 1)),
    (lambda: gan.dcgan_discriminator(filters=8), (None, 1)),
    (lambda: gan.dcgan_discriminator(filters=8, refine=True), (None, 1)),
])
def test_output_shapes(builder, shape):
    assert builder().output_shape == shape


@pytest.mark.parametrize("refine, patch", [(False, 10), (True, 18)])
def test_refined_discriminator_sees_a_larger_patch(refine, patch):
    d = gan.dcgan_discriminator(filters=4, refine=refine)
    features = keras.Model(d.input, d.get_layer(index=-3).output)  # the last 7x7 maps, before flattening
    assert features.output_shape == (None, 7, 7, 8)
    image = tf.Variable(np.random.default_rng(0).normal(size=(1, 28, 28, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        centre = features(image, training=False)[0, 3, 3, 0]
    seen = np.argwhere(np.asarray(tape.gradient(centre, image))[0, :, :, 0] != 0)
    assert (seen.max(axis=0) - seen.min(axis=0) + 1).tolist() == [patch, patch]


def test_generators_output_in_tanh_range():
    g = gan.dcgan_generator(latent_dim=16, filters=8)
    images = np.asarray(g(np.random.default_rng(0).normal(size=(4, 16)).astype("float32") * 50))
    assert images.min() >= -1 and images.max() <= 1


@pytest.mark.parametrize("call, message", [
    (lambda: gan.mlp_generator(latent_dim=0), "latent_dim must be a positive integer; got 0."),
    (lambda: gan.dcgan_generator(latent_dim=2.5), "latent_dim must be a positive integer; got 2.5."),
    (lambda: gan.dcgan_generator(filters=True), "filters must be a positive integer; got True."),
    (lambda: gan.mlp_generator(hidden_units=()), "hidden_units must be a non-empty sequence"),
    (lambda: gan.mlp_discriminator(dropout=1.0), "dropout must be a number in [0, 1); got 1.0."),
    (lambda: gan.GAN(gan.mlp_generator(8), gan.mlp_discriminator(), d_steps=0), "d_steps must be a positive"),
    (lambda: gan.GAN(gan.mlp_generator(8), gan.mlp_discriminator(), real_label=0.4), "real_label must be"),
])
def test_bad_arguments_raise_one_sentence_naming_them(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_numpy_integers_are_accepted():
    assert gan.dcgan_generator(latent_dim=np.int64(8), filters=np.int32(4)).output_shape == (None, 28, 28, 1)


def test_same_seed_same_result(digits):
    x, _ = digits
    weights = []
    for _ in range(2):
        trainer = small_gan(seed=3, eager=False)  # compiled, as a reader's rerun
        dataset, steps = data.make_dataset(x, batch_size=64, seed=3)
        trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        weights.append(trainer.generator.get_weights()[0])
    assert np.array_equal(weights[0], weights[1])


def test_k_discriminator_steps_per_generator_step(digits):
    x, _ = digits
    trainer = small_gan(d_steps=3)
    dataset, steps = data.make_dataset(x, batch_size=64)
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    assert {"d_loss", "g_loss", "D(x)", "D(G(z))"} <= set(history.history)
    assert all(np.isfinite(v[0]) for v in history.history.values())
    assert iterations(trainer.d_optimizer) == 3 * steps and iterations(trainer.g_optimizer) == steps


@pytest.mark.parametrize("trainer_class, pull", [
    (gan.GAN, lambda d_fake: 1 - d_fake),  # -log D(G(z)): d loss / d logit = -(1 - D(G(z)))
    (gan.MinimaxGAN, lambda d_fake: d_fake),  # log(1 - D(G(z))): d loss / d logit = -D(G(z))
])
def test_one_step_follows_the_non_saturating_game(trainer_class, pull):
    """One step, checked by hand against a discriminator that rejects the fakes. The generator's
    image ignores the noise (zero kernel: the image is its bias c) and D is linear (logit
    w . x + b), so G's SGD step moves c by lr (1 - D(G(z))) w under -log D(G(z)), almost a
    full step, and by only lr D(G(z)) w under log(1 - D(G(z))): the minimax trainer, also
    checked, tells the two losses apart."""
    lr, init = 0.1, keras.initializers
    z, x = keras.Input((4,)), keras.Input((28, 28, 1))
    image = keras.layers.Dense(784, kernel_initializer="zeros", bias_initializer=init.RandomUniform(-0.5, 0.5, seed=0))
    generator = keras.Model(z, keras.layers.Reshape((28, 28, 1))(image(z)))
    logit = keras.layers.Dense(1, kernel_initializer=init.RandomNormal(stddev=0.05, seed=1),
                               bias_initializer=init.Constant(-4.0))
    discriminator = keras.Model(x, logit(keras.layers.Flatten()(x)))
    trainer = trainer_class(generator, discriminator, seed=1)
    trainer.compile(d_optimizer=keras.optimizers.SGD(lr), g_optimizer=keras.optimizers.SGD(lr))
    c = image.bias.numpy()
    d_before = discriminator.get_weights()
    real = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
    logs = trainer.train_step(tf.constant(real))
    assert 0 < float(logs["D(x)"]) < 1 and 0 < float(logs["D(G(z))"]) < 0.05
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, discriminator.get_weights()))  # D took its step
    w, b = (v.ravel() for v in discriminator.get_weights())  # the D that G's step played against
    d_fake = 1 / (1 + np.exp(-(c @ w + b[0])))
    assert d_fake < 0.05  # D rejects the fakes: the two losses pull twenty times apart
    np.testing.assert_allclose(image.bias.numpy(), c + lr * pull(d_fake) * w, rtol=1e-5, atol=1e-7)


def test_interrupted_fit_resumes_with_weights_and_optimizer_state(digits, resume_check):
    x, _ = digits
    dataset, steps = data.make_dataset(x, batch_size=64)
    resume_check(small_gan, dataset, steps)


def test_generator_average_follows_the_formula_step_by_step():
    """avg <- m avg + (1 - m) w after every training step, checked on every weight."""
    trainer = small_gan()
    average = callbacks.GeneratorAverage(momentum=0.75)
    real = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype("float32")
    start = trainer.generator.get_weights()
    dataset = tf.data.Dataset.from_tensor_slices(real).batch(8).repeat()
    trainer.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, callbacks=[average])
    after_one = trainer.generator.get_weights()
    expected = [0.75 * s + 0.25 * w for s, w in zip(start, after_one)]
    got = trainer.generator_average.get_weights()
    assert all(np.allclose(g, e, rtol=1e-6, atol=1e-7) for g, e in zip(got, expected))
    assert any(not np.allclose(g, w) for g, w in zip(got, after_one))  # the average is not the weights
    trainer.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, callbacks=[average])
    expected = [0.75 * e + 0.25 * w for e, w in zip(expected, trainer.generator.get_weights())]
    assert all(np.allclose(g, e, rtol=1e-6, atol=1e-7)
               for g, e in zip(trainer.generator_average.get_weights(), expected))
    for bad in (1.0, -0.1, True, "0.9"):
        with pytest.raises(ValueError, match="momentum"):
            callbacks.GeneratorAverage(bad)


def test_generator_average_is_saved_and_restored_by_resume(digits, resume_check):
    x, _ = digits
    dataset, steps = data.make_dataset(x, batch_size=64)
    first, second = resume_check(small_gan, dataset, steps, extra=lambda: [callbacks.GeneratorAverage(0.9)])
    # The snapshot that resume restored held the average too: G, D and G's average.
    assert len(first.snapshot) == 2 * len(second.generator.weights) + len(second.discriminator.weights)


def test_stop_on_nan_stops_with_a_message(digits, capsys):
    x, _ = digits
    bad = np.full_like(x, np.nan)
    trainer = small_gan()
    stop = callbacks.StopOnNaN()
    dataset, steps = data.make_dataset(bad, batch_size=64)
    history = trainer.fit(dataset, epochs=3, steps_per_epoch=steps, verbose=0, callbacks=[stop])
    assert stop.stopped_at is not None and "became nan" in stop.message
    assert len(history.epoch) <= 1
    assert "Training stopped" in capsys.readouterr().out


def test_a_run_stopped_by_nan_is_not_resumed_from_nothing(digits, tmp_path):
    x, _ = digits
    dataset, steps = data.make_dataset(np.full_like(x, np.nan), batch_size=64)
    trainer = small_gan()
    trainer.fit(dataset, epochs=3, steps_per_epoch=steps, verbose=0,
                callbacks=[callbacks.StopOnNaN(), callbacks.resume(tmp_path / "backup")])
    assert "became nan" in (tmp_path / "backup" / "FAILED").read_text()
    again = small_gan()  # the same cell run again, after a kernel restart
    with pytest.raises(RuntimeError) as info:
        again.fit(dataset, epochs=3, steps_per_epoch=steps, verbose=0,
                  callbacks=[callbacks.StopOnNaN(), callbacks.resume(tmp_path / "backup")])
    message = str(info.value)
    assert message.startswith(f"The run backed up in {tmp_path / 'backup'} failed (Training stopped at step 1: ")
    assert message.endswith("delete that folder to train again from the start.")


def test_sample_grid_and_gif(digits, tmp_path):
    x, _ = digits
    trainer = small_gan()
    grid = callbacks.SampleGrid(np.zeros((16, 16), "float32"), frames_dir=tmp_path / "frames")
    dataset, steps = data.make_dataset(x, batch_size=64)
    trainer.fit(dataset, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[grid])
    assert [f[0] for f in grid.frames] == [1, 2]
    assert len(list((tmp_path / "frames").glob("epoch_*.png"))) == 2
    assert grid.save_gif(tmp_path / "progress.gif").stat().st_size > 0
    with pytest.raises(ValueError, match="every must be a positive integer"):
        grid.save_gif(tmp_path / "x.gif", every=0)
    # A shorter run in the same folder drops the frames the longer one left after its last epoch.
    again = callbacks.SampleGrid(np.zeros((16, 16), "float32"), frames_dir=tmp_path / "frames")
    small_gan().fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[again])
    assert [f[0] for f in again.frames] == [1]
    assert [p.name for p in (tmp_path / "frames").glob("epoch_*.png")] == ["epoch_0001.png"]


def test_image_grids_refuse_empty_input_and_zero_rows():
    from gan_lessons import plots

    with pytest.raises(ValueError, match="rows must be a positive integer; got 0."):
        plots.image_grid(np.zeros((4, 28, 28, 1)), "four images", rows=0)
    with pytest.raises(ValueError, match=r"images must be an array of shape .*; got shape \(0, 28, 28, 1\)\."):
        plots.image_grid(np.zeros((0, 28, 28, 1)), "no images")
    with pytest.raises(ValueError, match="frames is empty"):
        plots.save_gif([], "never.gif")


def test_a_backup_of_other_networks_is_refused_in_one_sentence(digits, tmp_path):
    """A backup left by another version of a lesson (other layers) is not loaded half-way."""
    x, _ = digits
    dataset, steps = data.make_dataset(x[:128], batch_size=64)
    first = small_gan()
    with pytest.raises(KeyboardInterrupt):
        first.fit(dataset, epochs=3, steps_per_epoch=steps, verbose=0,
                  callbacks=[callbacks.resume(tmp_path / "backup"), Interrupt(1)])
    other = gan.GAN(gan.mlp_generator(8, (16, 16)), gan.mlp_discriminator((16,)))
    other.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    with pytest.raises(RuntimeError) as info:
        other.fit(dataset, epochs=3, steps_per_epoch=steps, verbose=0, callbacks=[callbacks.resume(tmp_path / "backup")])
    message = str(info.value)
    assert message.startswith(f"The backup in {tmp_path / 'backup'} does not fit this model (")
    assert message.endswith("delete that folder to train again from the start.") and "\n" not in message
