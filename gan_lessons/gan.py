"""Lessons 01 and 02: the MLP GAN, the DCGAN, and the trainer both use.

Generators map noise (batch, latent_dim) to images (batch, 28, 28, 1) in [-1, 1]
(a tanh output); discriminators map images to one logit each (no sigmoid: the losses
work on logits, which is numerically safer).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, losses

IMAGE_SHAPE = (28, 28, 1)


# ----------------------------------------------------------------- lesson 01: MLPs


def mlp_generator(latent_dim=64, hidden_units=(256, 512, 1024), name="generator"):
    """Dense -> BatchNorm -> LeakyReLU blocks, then a tanh layer reshaped to an image."""
    latent_dim = checks.count("latent_dim", latent_dim)
    z = keras.Input(shape=(latent_dim,), name="noise")
    h = z
    for units in checks.counts("hidden_units", hidden_units):
        h = layers.Dense(units, use_bias=False)(h)
        h = layers.BatchNormalization()(h)
        h = layers.LeakyReLU(0.2)(h)
    h = layers.Dense(28 * 28, activation="tanh")(h)
    return keras.Model(z, layers.Reshape(IMAGE_SHAPE, name="image")(h), name=name)


def mlp_discriminator(hidden_units=(512, 256), dropout=0.3, name="discriminator"):
    """Flatten -> Dense -> LeakyReLU (-> Dropout) blocks -> one logit."""
    hidden_units = checks.counts("hidden_units", hidden_units)
    dropout = checks.number("dropout", dropout, 0.0, 1.0, high_open=True)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = layers.Flatten()(x)
    for units in hidden_units:
        h = layers.LeakyReLU(0.2)(layers.Dense(units)(h))
        if dropout:
            h = layers.Dropout(dropout)(h)
    return keras.Model(x, layers.Dense(1, name="logit")(h), name=name)


# ---------------------------------------------------------------- lesson 02: DCGAN


def bn_relu(h):
    """BatchNorm, then ReLU: the hidden-layer pattern of the DCGAN generators."""
    return layers.ReLU()(layers.BatchNormalization()(h))


def dcgan_generator(latent_dim=64, filters=64, name="generator"):
    """Project z to 7x7 feature maps, refine them, upsample twice to 28x28.

    (latent_dim,) -dense-> (7, 7, 2f) -3x3 conv-> (7, 7, 2f) -5x5 transposed, stride 2->
    (14, 14, f) -5x5 transposed, stride 2-> (28, 28, f/2) -3x3 conv, tanh-> (28, 28, 1),
    with f = ``filters``, BatchNorm and ReLU after every hidden layer. The stride-1
    convolutions at 7x7 and 28x28 shape strokes before and after the upsampling.
    """
    latent_dim = checks.count("latent_dim", latent_dim)
    filters = checks.count("filters", filters)
    z = keras.Input(shape=(latent_dim,), name="noise")
    h = bn_relu(layers.Dense(7 * 7 * 2 * filters, use_bias=False)(z))
    h = layers.Reshape((7, 7, 2 * filters))(h)
    h = bn_relu(layers.Conv2D(2 * filters, 3, padding="same", use_bias=False)(h))
    h = bn_relu(layers.Conv2DTranspose(filters, 5, strides=2, padding="same", use_bias=False)(h))
    h = bn_relu(layers.Conv2DTranspose(max(filters // 2, 1), 5, strides=2, padding="same", use_bias=False)(h))
    image = layers.Conv2D(1, 3, padding="same", activation="tanh", name="image")(h)
    return keras.Model(z, image, name=name)


def conv_trunk(x, filters, batch_norm, refine=False):
    """28x28 -> 14x14 -> 7x7 by stride-2 convolutions with LeakyReLU, then flatten.

    ``refine`` adds a 3x3 convolution at 7x7 before flattening. Each 7x7 feature of the
    two-layer trunk sees a 10x10 patch of the image and the logit only adds them up;
    after the extra layer each sees 18x18, most of a digit.
    """
    def norm_and_activation(h):
        return layers.LeakyReLU(0.2)(layers.BatchNormalization()(h) if batch_norm else h)

    h = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(x))
    h = norm_and_activation(layers.Conv2D(2 * filters, 4, strides=2, padding="same", use_bias=not batch_norm)(h))
    if refine:
        h = norm_and_activation(layers.Conv2D(2 * filters, 3, padding="same", use_bias=not batch_norm)(h))
    return layers.Flatten()(h)


def dcgan_discriminator(filters=64, refine=False, name="discriminator"):
    """(28, 28, 1) -> (14, 14, f) -> (7, 7, 2f) [-> (7, 7, 2f) when ``refine``] -> one logit.

    Stride-2 convolutions instead of pooling, LeakyReLU, BatchNorm after the second
    convolution (the DCGAN guidelines).
    """
    filters = checks.count("filters", filters)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = conv_trunk(x, filters, batch_norm=True, refine=refine)
    return keras.Model(x, layers.Dense(1, name="logit")(h), name=name)


# -------------------------------------------------------------------- the trainer


class GAN(keras.Model):
    """The GAN game with the non-saturating generator loss.

    Each training step takes ``d_steps`` (k) discriminator steps on the batch of real
    images, each against fresh fakes, then one generator step on fresh noise.
    ``real_label`` below 1 (for example 0.9) is one-sided label smoothing.
    """

    def __init__(self, generator, discriminator, d_steps=1, real_label=1.0, seed=0):
        super().__init__()
        checks.fits(generator, discriminator)                  # G's images are what D reads
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(generator.inputs[0].shape[-1])  # length of the noise vector z
        self.d_steps = checks.count("d_steps", d_steps)       # k in the paper
        self.real_label = checks.number("real_label", real_label, 0.5, 1.0, low_open=True)
        self.seed_generator = keras.random.SeedGenerator(seed)  # the noise of training, seeded
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="D(x)")
        self.d_fake_tracker = keras.metrics.Mean(name="D(G(z))")
        self.built = True  # both networks are built; Keras's checkpoint callback needs this

    def compile(self, d_optimizer, g_optimizer):
        super().compile(optimizer=None)  # each player has its own optimizer
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Build each optimizer on its player's weights now, so that checkpoints hold its state.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        # Listed here, the trackers are reset by fit() at the start of every epoch.
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    def generator_loss(self, fake_logits):
        # What G minimises: the non-saturating -log D(G(z)).
        return losses.generator_loss(fake_logits)

    def noise(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def train_step(self, real):
        batch_size = tf.shape(real)[0]

        # 1. k discriminator steps: real images -> real_label, fakes -> 0.
        for _ in range(self.d_steps):
            fake = self.generator(self.noise(batch_size), training=True)
            with tf.GradientTape() as tape:
                real_logits = self.discriminator(real, training=True)
                fake_logits = self.discriminator(fake, training=True)
                d_loss = losses.discriminator_loss(real_logits, fake_logits, self.real_label)
                scaled = self.d_optimizer.scale_loss(d_loss)  # d_loss itself, unless mixed precision
            grads = tape.gradient(scaled, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # 2. One generator step on fresh noise (below).
        g_loss, fake_logits = self.generator_step(batch_size)

        # 3. Running means of the epoch, for the progress line and the history.
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        return {m.name: m.result() for m in self.metrics}

    def generator_step(self, batch_size):
        # Make D call the fakes real: lower generator_loss, -log D(G(z)). The gradient flows
        # through D, but only G's weights are updated. Returns G's loss and D's logits.
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(self.noise(batch_size), training=True), training=True)
            g_loss = self.generator_loss(fake_logits)
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return g_loss, fake_logits


class MinimaxGAN(GAN):
    """The same game, but G minimises the saturating log(1 - D(G(z)))."""

    def generator_loss(self, fake_logits):
        return losses.minimax_generator_loss(fake_logits)


# ----------------------------------------------------------------- lesson 02: walking through the noise


def slerp(z_a, z_b, t):
    """Lesson 02's spherical interpolation between two noise vectors (NumPy): the point at ``t``
    (0 to 1) on the arc from ``z_a`` to ``z_b``, which keeps a Gaussian vector near its typical length."""
    theta = np.arccos(np.clip(z_a @ z_b / (np.linalg.norm(z_a) * np.linalg.norm(z_b)), -1, 1))
    return (np.sin((1 - t) * theta) * z_a + np.sin(t * theta) * z_b) / np.sin(theta)
