"""Lesson 09's networks: the step embedding, the 2-D denoiser, the digits' U-Net denoiser, and
the autoencoder of latent diffusion (a digit <-> a 7x7xC latent). ``gan_lessons.diffusion``
(the process, the trainer, the samplers) exports them too.

A denoiser maps (x_t, t[, label]) to a prediction of x_t's shape; a conditional one has a label
embedding whose extra index ``num_classes`` means "no label" (for classifier-free guidance).
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks
from gan_lessons.gan import IMAGE_SHAPE


@keras.saving.register_keras_serializable("gan_lessons")
class SinusoidalEmbedding(layers.Layer):
    """A step number t -> (sin(t f_0), .., sin(t f_{k-1}), cos(t f_0), .., cos(t f_{k-1})), k = dim / 2,
    with frequencies f_i = 10000^(-i/k) from 1 down to 10000^(-(k-1)/k), about 1/5600 for dim 32 (the
    Transformer's position code): nearby steps get similar vectors, and every step a distinct one."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = checks.count("dim", dim, minimum=2)
        if self.dim % 2:
            raise checks.BadArgument(f"dim must be even (half sines, half cosines); got {dim}.")

    def call(self, t):
        half = self.dim // 2
        frequencies = tf.exp(-math.log(10000.0) * tf.range(half, dtype="float32") / half)
        angles = tf.reshape(tf.cast(t, "float32"), (-1, 1)) * frequencies[None, :]
        return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


def toy_denoiser(hidden_units=(128, 128, 128), time_dim=32, name="toy_denoiser"):
    """(x_t (batch, 2), t (batch,)) -> a 2-D prediction: an MLP whose every hidden layer also
    receives the step's embedding, so one network serves all noise levels."""
    x = keras.Input(shape=(2,), name="noisy")
    t = keras.Input(shape=(), name="time")
    emb = SinusoidalEmbedding(time_dim)(t)
    emb = layers.Dense(time_dim, activation="swish")(emb)
    h = x
    for units in checks.counts("hidden_units", hidden_units):
        h = layers.Dense(units, activation="swish")(layers.Concatenate()([h, emb]))
    return keras.Model([x, t], layers.Dense(2, name="prediction")(h), name=name)


def res_block(h, emb, filters):
    """GroupNorm, swish, 3x3 conv; add the embedding (one number per channel); again; plus a skip."""
    skip = h if h.shape[-1] == filters else layers.Conv2D(filters, 1)(h)
    h = layers.Conv2D(filters, 3, padding="same")(layers.Activation("swish")(
        layers.GroupNormalization(min(8, h.shape[-1]))(h)))
    h = layers.Add()([h, layers.Reshape((1, 1, filters))(layers.Dense(filters)(emb))])
    h = layers.Conv2D(filters, 3, padding="same")(layers.Activation("swish")(layers.GroupNormalization(8)(h)))
    return layers.Add()([skip, h])


def unet(input_shape=IMAGE_SHAPE, filters=(32, 64, 128), num_classes=10, emb_dim=128, name="unet"):
    """(x_t, t, label) -> a prediction of x_t's shape. A residual block per level on the way down
    (halving the size between levels), one in the middle, one per level on the way up with the
    way down's same-size features concatenated (the U-Net's skips). The step's embedding plus a
    label embedding (index ``num_classes`` = no label; None: no label input) enters every block."""
    filters, input_shape = checks.counts("filters", filters), checks.counts("input_shape", input_shape)
    if any(f % 8 for f in filters) or len(input_shape) != 3:
        raise checks.BadArgument(f"filters must be multiples of 8 (GroupNormalization's groups) and input_shape "
                                 f"(height, width, channels); got {filters} and {input_shape}.")
    x = keras.Input(shape=input_shape, name="noisy")
    t = keras.Input(shape=(), name="time")
    inputs = [x, t]
    emb = SinusoidalEmbedding(emb_dim)(t)
    emb = layers.Dense(emb_dim)(layers.Dense(emb_dim, activation="swish")(emb))
    if num_classes is not None:
        label = keras.Input(shape=(), dtype="int32", name="label")
        inputs.append(label)
        emb = layers.Add()([emb, layers.Embedding(checks.count("num_classes", num_classes) + 1, emb_dim)(label)])
    emb = layers.Activation("swish")(emb)

    h = layers.Conv2D(filters[0], 3, padding="same")(x)
    skips = []
    for level, f in enumerate(filters):
        h = res_block(h, emb, f)
        skips.append(h)
        if level < len(filters) - 1:
            h = layers.Conv2D(f, 3, strides=2, padding="same")(h)  # 28 -> 14 -> 7 (7 -> 4)
    h = res_block(h, emb, filters[-1])
    for level in reversed(range(len(filters))):
        skip = skips.pop()
        if h.shape[1] != skip.shape[1]:
            h = layers.UpSampling2D(2)(h)
            extra = h.shape[1] - skip.shape[1]  # 4 -> 8 for a 7-wide skip: crop one row and column
            if extra:
                h = layers.Cropping2D(((0, extra), (0, extra)))(h)
            h = layers.Conv2D(filters[level], 3, padding="same")(h)
        h = res_block(layers.Concatenate()([h, skip]), emb, filters[level])
    h = layers.Activation("swish")(layers.GroupNormalization(8)(h))
    out = layers.Conv2D(input_shape[-1], 3, padding="same", kernel_initializer="zeros", name="prediction")(h)
    return keras.Model(inputs, out, name=name)


def autoencoder(latent_channels=4, filters=(32, 64), name="autoencoder"):
    """(encoder, decoder): 28x28x1 -> 7x7xC by two stride-2 convolutions, and back by two
    transposed ones. Both ends are linear (no tanh: in short tests a tanh output stuck on a
    blank digit early in training); decoded images are clipped to [-1, 1] instead."""
    filters = checks.counts("filters", filters)
    if len(filters) != 2:
        raise checks.BadArgument(f"filters must give 2 channel counts (28x28, then 14x14 and 7x7); got {filters}.")
    f1, f2 = filters
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = layers.Conv2D(f1, 3, padding="same", activation="swish")(x)
    h = layers.Conv2D(f1, 4, strides=2, padding="same", activation="swish")(h)
    h = layers.Conv2D(f2, 4, strides=2, padding="same", activation="swish")(h)
    h = layers.Conv2D(f2, 3, padding="same", activation="swish")(h)
    z = layers.Conv2D(checks.count("latent_channels", latent_channels), 3, padding="same", name="latent")(h)
    encoder = keras.Model(x, z, name="encoder")
    z_in = keras.Input(shape=(7, 7, latent_channels), name="latent")
    h = layers.Conv2D(f2, 3, padding="same", activation="swish")(z_in)
    h = layers.Conv2DTranspose(f2, 4, strides=2, padding="same", activation="swish")(h)
    h = layers.Conv2DTranspose(f1, 4, strides=2, padding="same", activation="swish")(h)
    h = layers.Conv2D(f1, 3, padding="same", activation="swish")(h)
    decoder = keras.Model(z_in, layers.Conv2D(1, 3, padding="same", name="image")(h), name="decoder")
    return encoder, decoder


def train_autoencoder(encoder, decoder, images, epochs=10, batch_size=64, learning_rate=1e-3, callbacks=(),
                      verbose=0):
    """Fit encoder + decoder to reproduce ``images`` (mean absolute error). Returns the Keras history."""
    images, batch_size = checks.array("images", images, "(n, 28, 28, 1)"), checks.count("batch_size", batch_size)
    learning_rate = checks.number("learning_rate", learning_rate, 0.0, low_open=True)
    x = keras.Input(shape=IMAGE_SHAPE)
    model = keras.Model(x, decoder(encoder(x)))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mae")
    return model.fit(images, images, epochs=checks.count("epochs", epochs), batch_size=batch_size, shuffle=True,
                     verbose=verbose, callbacks=list(callbacks))


def encode(encoder, images, batch_size=500):
    """Images -> latents, ``batch_size`` at a time."""
    images, batch_size = checks.array("images", images, "(n, 28, 28, 1)"), checks.count("batch_size", batch_size)
    return np.concatenate([np.asarray(encoder(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def decode(decoder, latents, batch_size=500):
    """Latents -> images clipped to [-1, 1], ``batch_size`` at a time."""
    latents, batch_size = checks.array("latents", latents, "(n, 7, 7, c)"), checks.count("batch_size", batch_size)
    out = [np.asarray(decoder(latents[i:i + batch_size], training=False)) for i in range(0, len(latents), batch_size)]
    return np.clip(np.concatenate(out), -1.0, 1.0)
