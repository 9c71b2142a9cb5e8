import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons  # noqa: F401  (registers the custom layers)
from gan_lessons import models, trainers


@pytest.mark.parametrize(
    "builder, shape",
    [
        (lambda: models.mlp_generator(latent_dim=16), (None, 28, 28, 1)),
        (lambda: models.dcgan_generator(latent_dim=16, filters=8), (None, 28, 28, 1)),
        (lambda: models.mlp_discriminator(), (None, 1)),
        (lambda: models.dcgan_discriminator(filters=8), (None, 1)),
        (lambda: models.critic(filters=8), (None, 1)),
        (lambda: models.dcgan_discriminator(filters=8, refine=True), (None, 1)),
        (lambda: models.critic(filters=8, refine=True), (None, 1)),
    ],
)
def test_output_shapes(builder, shape):
    assert builder().output_shape == shape


@pytest.mark.parametrize("refine, patch", [(False, 10), (True, 18)])
def test_refined_discriminator_sees_a_larger_patch(refine, patch):
    d = models.dcgan_discriminator(filters=4, refine=refine)
    features = keras.Model(d.input, d.get_layer(index=-3).output)  # the last 7x7 maps, before flattening
    assert features.output_shape == (None, 7, 7, 8)
    image = tf.Variable(np.random.default_rng(0).normal(size=(1, 28, 28, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        centre = features(image, training=False)[0, 3, 3, 0]
    seen = np.argwhere(np.asarray(tape.gradient(centre, image))[0, :, :, 0] != 0)
    assert (seen.max(axis=0) - seen.min(axis=0) + 1).tolist() == [patch, patch]


def test_generators_output_in_tanh_range():
    g = models.dcgan_generator(latent_dim=16, filters=8)
    images = np.asarray(g(np.random.default_rng(0).normal(size=(4, 16)).astype("float32") * 50))
    assert images.min() >= -1 and images.max() <= 1


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: models.mlp_generator(latent_dim=0), "latent_dim"),
        (lambda: models.dcgan_generator(latent_dim=-3), "latent_dim"),
        (lambda: models.dcgan_generator(latent_dim=2.5), "latent_dim"),
        (lambda: models.mlp_generator(hidden_units=()), "hidden_units"),
        (lambda: models.mlp_discriminator(image_shape=(28, 28)), "image_shape"),
        (lambda: models.dcgan_discriminator(norm="instance"), "norm"),
        (lambda: models.critic(norm="batch"), "norm"),
        (lambda: models.conditional_generator(num_classes=0), "num_classes"),
    ],
)
def test_bad_builder_arguments_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_gan_trainer_checks_k():
    g, d = models.mlp_generator(latent_dim=8), models.mlp_discriminator()
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="d_steps"):
            trainers.GAN(g, d, d_steps=bad)


def test_conditional_generator_accepts_both_label_shapes():
    g = models.conditional_generator(latent_dim=8, filters=8)
    z = np.zeros((3, 8), "float32")
    a = np.asarray(g([z, np.array([1, 2, 3])]))
    b = np.asarray(g([z, np.array([[1], [2], [3]])]))
    assert a.shape == (3, 28, 28, 1) and np.allclose(a, b)


@pytest.mark.parametrize("labels", [np.array([0, 1, 10]), np.array([-1, 0, 1])])
def test_conditional_generator_rejects_labels_out_of_range(labels):
    g = models.conditional_generator(latent_dim=8, filters=8)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        g([np.zeros((3, 8), "float32"), labels])
    # Inside a compiled graph (as in predict, or on a GPU) the same check still fires.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"0\.\.9"):
        g.predict([np.zeros((3, 8), "float32"), labels], verbose=0)


def test_conditional_models_reject_mismatched_batch_sizes():
    g = models.conditional_generator(latent_dim=8, filters=8)
    with pytest.raises(ValueError, match="one class per row"):
        g([np.zeros((4, 8), "float32"), np.array([1, 2, 3])])
    d = models.conditional_discriminator(filters=8)
    with pytest.raises(ValueError, match="one class per row"):
        d([np.zeros((2, 28, 28, 1), "float32"), np.array([1, 2, 3])])


def test_saved_conditional_generator_loads_and_still_checks(tmp_path):
    g = models.conditional_generator(latent_dim=8, filters=8)
    path = tmp_path / "g.keras"
    g.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    z, y = np.ones((2, 8), "float32"), np.array([3, 4])
    assert np.allclose(np.asarray(g([z, y])), np.asarray(loaded([z, y])), atol=1e-6)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        loaded([z, np.array([3, 12])])


def test_gan_trainer_checks_r1_weight_and_conditional_gan_refuses_it():
    g, d = models.mlp_generator(latent_dim=8), models.mlp_discriminator()
    for bad in (-1.0, "1", True):
        with pytest.raises(ValueError, match="r1_weight"):
            trainers.GAN(g, d, r1_weight=bad)
    cg, cd = models.conditional_generator(latent_dim=8, filters=4), models.conditional_discriminator(filters=4)
    with pytest.raises(ValueError, match="r1_weight"):
        trainers.ConditionalGAN(cg, cd, r1_weight=1.0)


def test_r1_trainer_takes_a_step():
    g = models.dcgan_generator(latent_dim=8, filters=4)
    d = models.dcgan_discriminator(filters=4, norm=None)
    gan = trainers.GAN(g, d, r1_weight=1.0, seed=0)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    before = [w.copy() for w in d.get_weights()]
    logs = gan.train_on_batch(np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype("float32"),
                              return_dict=True)
    assert np.isfinite(logs["d_loss"]) and np.isfinite(logs["g_loss"])
    assert any(not np.allclose(a, b) for a, b in zip(before, d.get_weights()))
