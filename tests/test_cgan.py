"""Lesson 03: conditional builders, their label checks, and the conditional trainer."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import iterations

import gan_lessons
from gan_lessons import cgan, data


def small_cgan(seed=0, **kwargs):
    gan_lessons.set_seed(seed)
    trainer = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=8), cgan.conditional_discriminator(filters=8),
                                  seed=seed, **kwargs)
    trainer.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    trainer.run_eagerly = True  # a few steps, eagerly (conftest.py says why)
    return trainer


def test_conditional_generator_accepts_both_label_shapes_and_types():
    g = cgan.conditional_generator(latent_dim=8, filters=8)
    z = np.zeros((3, 8), "float32")
    a = np.asarray(g([z, np.array([1, 2, 3])]))
    for labels in (np.array([[1], [2], [3]]), np.array([1.0, 2.0, 3.0]), np.array([1, 2, 3], dtype=np.uint8)):
        assert np.allclose(a, np.asarray(g([z, labels])))
    assert a.shape == (3, 28, 28, 1)


@pytest.mark.parametrize("labels, got", [
    (np.array([0, 1, 10]), "[10]"), (np.array([-1, 0, 1]), "[-1]"), (np.array([2.6, 1, 3]), "[2.6]"),
])
def test_bad_labels_get_one_sentence(labels, got):
    g = cgan.conditional_generator(latent_dim=8, filters=8)
    with pytest.raises(ValueError) as info:
        g([np.zeros((3, 8), "float32"), labels])
    assert str(info.value) == ("labels must be whole numbers in 0..9, one per row of the noise or images; "
                               f"got {got}.")
    # Inside a compiled graph (predict, or on a GPU) the same check still fires.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"whole numbers in 0\.\.9"):
        g.predict([np.zeros((3, 8), "float32"), labels], verbose=0)


def test_conditional_models_reject_mismatched_batch_sizes():
    g = cgan.conditional_generator(latent_dim=8, filters=8)
    with pytest.raises(ValueError, match="got 3 labels for 4 rows"):
        g([np.zeros((4, 8), "float32"), np.array([1, 2, 3])])
    d = cgan.conditional_discriminator(filters=8)
    with pytest.raises(ValueError, match="got 3 labels for 2 rows"):
        d([np.zeros((2, 28, 28, 1), "float32"), np.array([1, 2, 3])])


def test_saved_conditional_generator_loads_and_still_checks(tmp_path):
    g = cgan.conditional_generator(latent_dim=8, filters=8)
    g.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", compile=False)
    z, y = np.ones((2, 8), "float32"), np.array([3, 4])
    assert np.allclose(np.asarray(g([z, y])), np.asarray(loaded([z, y])), atol=1e-6)
    with pytest.raises(ValueError, match="got \\[12\\]"):
        loaded([z, np.array([3, 12])])


def test_builders_check_their_arguments():
    with pytest.raises(ValueError, match="num_classes must be a positive integer; got 0."):
        cgan.conditional_generator(num_classes=0)
    with pytest.raises(ValueError, match="embed_dim"):
        cgan.conditional_generator(embed_dim=-1)


class Spy(keras.Model):
    """Wraps a conditional discriminator and records the labels of every (eager) call."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.labels = []

    @property
    def inputs(self):  # what the trainer checks the generator's images against
        return self.inner.inputs

    def call(self, inputs, training=False):
        self.labels.append(np.asarray(inputs[1]).reshape(-1).tolist())
        return self.inner(inputs, training=training)


@pytest.mark.parametrize("matching_aware, d_steps", [(False, 1), (True, 1), (True, 2)])
def test_the_discriminator_sees_the_pairs_it_should(matching_aware, d_steps):
    gan_lessons.set_seed(0)
    spy = Spy(cgan.conditional_discriminator(filters=4))
    trainer = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), spy, matching_aware=matching_aware,
                                  d_steps=d_steps, seed=0)
    trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    real = np.zeros((6, 28, 28, 1), "float32")
    true_labels = [0, 1, 2, 7, 8, 9]
    logs = trainer.train_step((tf.constant(real), tf.constant(true_labels)))
    assert np.isfinite(float(logs["d_loss"])) and np.isfinite(float(logs["g_loss"]))
    per_step = 3 if matching_aware else 2  # (real, y), (fake, y'), and (real, a wrong label)
    assert len(spy.labels) == d_steps * per_step + 1  # + the generator step's call
    for step in range(d_steps):
        calls = spy.labels[step * per_step:(step + 1) * per_step]
        assert calls[0] == true_labels
        if matching_aware:
            assert all(w != t and 0 <= w <= 9 for w, t in zip(calls[2], true_labels))  # never right by chance
    assert iterations(trainer.d_optimizer) == d_steps and iterations(trainer.g_optimizer) == 1


def test_conditional_training_logs_both_players():
    x, y = data.load_mnist("train", source="bundled", limit=128, verbose=False)
    dataset, steps = data.make_dataset(x, y, batch_size=32)
    trainer = small_cgan(matching_aware=True)
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    assert {"d_loss", "g_loss", "D(x)", "D(G(z))"} <= set(history.history)
    assert all(np.isfinite(v[0]) for v in history.history.values())
