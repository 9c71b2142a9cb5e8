"""Every trainer compiled with XLA, as Keras compiles ``train_step`` on a GPU.

On a GPU, ``fit`` wraps ``train_step`` in ``tf.function(jit_compile=True)``. Here it never
would: Keras turns XLA off while op determinism is on (``set_seed`` turns it on without a
GPU) and under tf.distribute. So each test compiles the step itself, as Keras does, and
trains a few steps on this CPU. XLA also drops TensorFlow's asserts; the last test shows
what a conditional model does with a bad label there.
"""

import os

# XLA's compiles dominate this file's time: they take a third less without LLVM's optimisations
# (read at the process's first compile; the code compiled runs a little slower, no differently).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from test_distribute import LEARNS, digits, repeated, small_trainer  # noqa: E402

import gan_lessons  # noqa: E402
from gan_lessons import callbacks, cgan  # noqa: E402

STEPS = 10
FAMILIES = ["dcgan", "cgan", "cgan-matching-aware", "wgan-clip", "wgan-gp", "cyclegan", "pix2pix", "stylegan",
            "diffusion"]


def cgan_trainer(matching_aware):
    x, y = digits(16)
    trainer = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(filters=4),
                                  matching_aware=matching_aware)
    trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    return trainer, tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


@pytest.fixture(scope="module")
def trained():
    """trained(model): a small trainer of the family, its train_step compiled with XLA, the logs of
    its first 10 steps as floats, and for each network the trainable weights those steps left as
    they were (each family is compiled once per module: XLA compiles are slow)."""
    cache = {}

    def get(model):
        if model not in cache:
            gan_lessons.set_seed(0)
            if model.startswith("cgan"):
                trainer, dataset = cgan_trainer(matching_aware=model == "cgan-matching-aware")
            else:
                trainer, dataset = small_trainer(model)
            networks = [layer for layer in trainer.layers if isinstance(layer, keras.Model)]
            before = [[np.array(v) for v in net.trainable_variables] for net in networks]
            # The batches are read first: deleting an unfinished iterator of a repeated dataset takes seconds.
            step, batches = tf.function(trainer.train_step, jit_compile=True), list(repeated(dataset).take(STEPS))
            logs = [{k: float(v) for k, v in step(batch).items()} for batch in batches]
            unchanged = {net.name: [v.path for v, s in zip(net.trainable_variables, start)
                                    if np.array_equal(np.asarray(v), s)] for net, start in zip(networks, before)}
            cache[model] = trainer, step, logs, unchanged
        return cache[model]

    return get


@pytest.mark.parametrize("model", FAMILIES)
def test_every_trainer_trains_compiled_with_xla(trained, model):
    """Each family compiles under XLA (CycleGAN's image pool included) and trains: the logs stay
    finite, every network's every trainable weight moves (but a critic's last bias, which the
    Wasserstein loss cancels), and the running mean of the loss its first player lowers is lower
    after 10 steps than after the first."""
    _, _, logs, unchanged = trained(model)
    assert all(np.isfinite(value) for log in logs for value in log.values()), logs
    expected = {name: ["score/bias"] if name == "critic" else [] for name in unchanged}
    assert unchanged and unchanged == expected
    key = LEARNS[model.split("-matching")[0]]
    assert logs[-1][key] < logs[0][key], (key, [log[key] for log in logs])


def test_a_bad_label_under_xla_turns_its_rows_into_nan_and_training_stops_on_it(trained, capsys):
    """XLA drops the label check's asserts but not its arithmetic: the rows whose label is bad
    come out NaN (the others as without XLA), and a training step on one gets NaN losses,
    which ``StopOnNaN`` reports in one sentence and stops on."""
    trainer, step, _, _ = trained("cgan")
    generator = tf.function(lambda z, y: trainer.generator([z, y]), jit_compile=True)
    z = np.random.default_rng(0).standard_normal((5, 8)).astype("float32")
    images = generator(z, np.array([3.0, 10.0, -1.0, 2.6, 7.0])).numpy().reshape(5, -1)
    assert np.isnan(images[1:4]).all() and np.isfinite(images[[0, 4]]).all()
    eager = np.asarray(trainer.generator([z[[0, 4]], np.array([3, 7])])).reshape(2, -1)
    np.testing.assert_allclose(images[[0, 4]], eager, rtol=1e-5, atol=1e-6)

    x, y = digits(8)
    y = np.where(np.arange(8) == 5, 10, y)  # one label out of range
    logs = {k: float(v) for k, v in step((tf.constant(x), tf.constant(y))).items()}  # the same compiled step
    assert np.isnan(logs["d_loss"])
    stop = callbacks.StopOnNaN()
    stop.set_model(trainer)
    stop.on_train_batch_end(0, logs)
    assert trainer.stop_training and stop.stopped_at == "step 1"
    assert capsys.readouterr().out == f"{stop.message}\n"
    assert stop.message.startswith("Training stopped at step 1: d_loss became nan.")
