"""The trainers learn, are seeded, and resume after an interruption."""

import keras
import numpy as np
import pytest

import gan_lessons
from gan_lessons import callbacks, data, models, recipes, trainers


def _iters(optimizer):
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def _small_gan(seed=0, conditional=False):
    gan_lessons.set_seed(seed)
    if conditional:
        gan = trainers.ConditionalGAN(models.conditional_generator(16, filters=8),
                                      models.conditional_discriminator(filters=8), seed=seed)
    else:
        gan = trainers.GAN(models.dcgan_generator(16, filters=8), models.dcgan_discriminator(filters=8),
                           seed=seed)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return gan


@pytest.fixture(scope="module")
def digits():
    return data.load_mnist("train", source="bundled", limit=256, verbose=False)


def test_same_seed_same_result(digits):
    x, _ = digits
    weights = []
    for _ in range(2):
        gan = _small_gan(seed=3)
        gan.fit(data.make_dataset(x, batch_size=64, seed=3), epochs=1, verbose=0)
        weights.append(gan.generator.get_weights()[0])
    assert np.array_equal(weights[0], weights[1])


def test_history_has_both_players_losses(digits):
    x, y = digits
    gan = _small_gan(conditional=True)
    history = gan.fit(data.make_dataset(x, y, batch_size=64), epochs=1, verbose=0)
    assert {"d_loss", "g_loss", "D(x)", "D(G(z))"} <= set(history.history)
    assert all(np.isfinite(v[0]) for v in history.history.values())


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after_epoch:
            self.model.snapshot = [w.copy() for w in self.model.generator.get_weights()]
            raise KeyboardInterrupt


def test_interrupted_fit_resumes_with_weights_and_optimizer_state(digits, tmp_path):
    x, _ = digits
    ds = data.make_dataset(x, batch_size=64)
    steps = len(ds)
    first = _small_gan()
    with pytest.raises(KeyboardInterrupt):
        first.fit(ds, epochs=4, verbose=0, callbacks=[callbacks.resume(tmp_path / "b"), _Interrupt(2)])
    assert _iters(first.g_optimizer) == 2 * steps

    # A new process would build fresh networks: simulate it with a differently seeded model.
    second = _small_gan(seed=99)
    epochs_run = []
    restored = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if not epochs_run:
                restored.append([w.copy() for w in self.model.generator.get_weights()])
                restored.append(_iters(self.model.g_optimizer))
                restored.append(_iters(self.model.d_optimizer))
            epochs_run.append(epoch)

    second.fit(ds, epochs=4, verbose=0, callbacks=[callbacks.resume(tmp_path / "b"), Watch()])
    assert epochs_run == [2, 3]  # continued, not restarted
    assert all(np.array_equal(a, b) for a, b in zip(first.snapshot, restored[0]))
    assert restored[1] == 2 * steps and restored[2] == 2 * steps  # Adam state came back too
    assert _iters(second.g_optimizer) == 4 * steps
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_stop_on_nan_stops_with_a_message(digits, capsys):
    x, _ = digits
    bad = x.copy()
    bad[:] = np.nan
    gan = _small_gan()
    stop = callbacks.StopOnNaN()
    history = gan.fit(data.make_dataset(bad, batch_size=64), epochs=3, verbose=0, callbacks=[stop])
    assert stop.stopped_at is not None and "became nan" in stop.message
    assert len(history.epoch) <= 1
    assert "Training stopped" in capsys.readouterr().out


def test_sample_grid_and_gif(digits, tmp_path):
    x, _ = digits
    gan = _small_gan()
    grid = callbacks.SampleGrid(np.zeros((16, 16), "float32"), frames_dir=tmp_path / "frames")
    gan.fit(data.make_dataset(x, batch_size=64), epochs=2, verbose=0, callbacks=[grid])
    assert [f[0] for f in grid.frames] == [1, 2]
    assert len(list((tmp_path / "frames").glob("epoch_*.png"))) == 2
    gif = grid.save_gif(tmp_path / "progress.gif")
    assert gif.stat().st_size > 0


def test_dcgan_recipe_saves_the_averaged_generator(tmp_path):
    """The dcgan recipe keeps a moving average of G's weights and saves it, not the raw weights."""
    recipe = recipes.get("dcgan")
    gan = recipe.build(seed=0)
    start = [w.copy() for w in gan.generator.get_weights()]
    x = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype("float32")
    gan.fit(data.make_dataset(x, batch_size=32, seed=0), epochs=2, verbose=0)
    raw = gan.generator.get_weights()
    # Four steps of avg <- m avg + (1 - m) w, starting from the initial weights.
    assert all(np.allclose(a, s, atol=0.05) for a, s in zip(gan.generator_average.get_weights(), start))
    recipe.save(gan, tmp_path)
    saved = keras.saving.load_model(tmp_path / "generator.keras", compile=False).get_weights()
    assert all(np.allclose(s, a) for s, a in zip(saved, gan.generator_average.get_weights()))
    assert any(not np.allclose(s, r) for s, r in zip(saved, raw))


def test_weight_average_follows_the_formula():
    g, d = models.mlp_generator(latent_dim=4, hidden_units=(8,)), models.mlp_discriminator(hidden_units=(8,))
    gan = trainers.GAN(g, d, average_momentum=0.5, seed=0)
    before = gan.generator_average.get_weights()
    for w in g.weights:
        w.assign(w + 1.0)
    gan.update_average()
    assert all(np.allclose(a, b + 0.5 * (w - b)) for a, b, w in
               zip(gan.generator_average.get_weights(), before, g.get_weights()))
    for bad in (1.0, -0.1, True, "0.9"):
        with pytest.raises(ValueError, match="average_momentum"):
            trainers.GAN(g, d, average_momentum=bad)


class _RecordRates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.rates.append((float(self.model.d_optimizer.learning_rate),
                               float(self.model.g_optimizer.learning_rate)))


def test_learning_rate_step_lowers_both_rates_from_its_epoch(digits):
    x, _ = digits
    gan = _small_gan()
    record = _RecordRates()
    step = callbacks.LearningRateStep(2, 0.25, (2e-4, 4e-4))
    gan.fit(data.make_dataset(x, batch_size=64), epochs=4, verbose=0, callbacks=[step, record])
    assert np.allclose(record.rates, [(2e-4, 4e-4)] * 2 + [(5e-5, 1e-4)] * 2)
    with pytest.raises(ValueError, match="factor"):
        callbacks.LearningRateStep(1, 0.0, (1e-3, 1e-3))


def test_learning_rate_step_holds_after_a_resume(digits, tmp_path):
    """Interrupted after the step, the resumed run goes on at the lowered rate."""
    x, _ = digits
    ds = data.make_dataset(x, batch_size=64, seed=0)
    gan = _small_gan()
    with pytest.raises(KeyboardInterrupt):
        gan.fit(ds, epochs=4, verbose=0, callbacks=[callbacks.resume(tmp_path / "b"),
                                                    callbacks.LearningRateStep(1, 0.5, (2e-4, 2e-4)),
                                                    _Interrupt(after_epoch=2)])
    gan = _small_gan()
    record = _RecordRates()
    gan.fit(ds, epochs=4, verbose=0, callbacks=[callbacks.resume(tmp_path / "b"),
                                                callbacks.LearningRateStep(1, 0.5, (2e-4, 2e-4)), record])
    assert np.allclose(record.rates, [(1e-4, 1e-4)] * 2)


class _Recorder(trainers.GAN):
    """A GAN whose (eager) train step only records which images it was given."""

    def train_step(self, data):
        self.seen.append(np.asarray(data)[:, 0, 0, 0].astype(int).tolist())
        self.d_loss_tracker.update_state(0.0)
        return {"d_loss": self.d_loss_tracker.result()}


@pytest.fixture
def recorder(monkeypatch):
    """A recording GAN on 12 images numbered 0..11, and the list of iterators made over datasets."""
    import tensorflow as tf

    made = []
    make_iterator = tf.data.Dataset.__iter__
    monkeypatch.setattr(tf.data.Dataset, "__iter__", lambda ds: made.append(ds) or make_iterator(ds))
    images = np.repeat(np.arange(12, dtype="float32"), 28 * 28).reshape(12, 28, 28, 1)
    gan = _Recorder(models.dcgan_generator(4, filters=2), models.dcgan_discriminator(filters=2))
    gan.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), run_eagerly=True)
    gan.seen = []
    return gan, images, made


def test_fit_reads_each_epoch_as_one_new_pass_through_one_iterator(recorder):
    gan, images, made = recorder
    history = gan.fit(data.make_dataset(images, batch_size=4, seed=1), epochs=3, verbose=0)
    assert len(history.epoch) == 3
    assert len(gan.seen) == 9 and all(len(batch) == 4 for batch in gan.seen)
    epochs = [sum(gan.seen[3 * e:3 * e + 3], []) for e in range(3)]
    assert all(sorted(order) == list(range(12)) for order in epochs)  # every image once an epoch
    assert len({tuple(order) for order in epochs}) == 3  # in a new order each epoch
    assert len(made) == 1  # one iterator for the whole run


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_fit_leaves_a_dataset_of_unknown_length_to_keras(recorder):
    gan, images, made = recorder
    unknown = data.make_dataset(images, batch_size=4, seed=1).filter(lambda batch: True)
    history = gan.fit(unknown, epochs=2, verbose=0)
    assert len(history.epoch) == 2 and len(gan.seen) == 6
    assert len(made) == 2  # Keras's own way: a new iterator each epoch
