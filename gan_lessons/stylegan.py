"""Lesson 08: a style-based generator (StyleGAN's ideas at digit scale).

z -> mapping network -> w -> truncation (``psi``) -> a copy of w for each of the synthesis
network's ``NUM_STYLES`` layers (copies can differ: style mixing), each modulating a convolution
(StyleGAN2; StyleGAN 1's AdaIN is written in the lesson only), plus per-pixel noise. The result
keeps the course's contract: noise (batch, latent_dim) -> image (batch, 28, 28, 1) in [-1, 1].
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, gan, losses, metrics
from gan_lessons.gan import IMAGE_SHAPE

NUM_STYLES = 6
"""Style inputs of the synthesis network: two layers at each of 7x7, 14x14 and 28x28."""
STYLE_INIT = "lecun_normal"
"""The maps w -> style start with weights of variance 1/w_dim: styles spread about as much as w."""


# ----------------------------------------------------------- the layers and the networks


@keras.saving.register_keras_serializable("gan_lessons")
class PixelNorm(layers.Layer):
    """x / sqrt(mean(x^2) + 1e-8) over the last axis: z is put on a sphere of radius sqrt(d)."""

    def call(self, x):
        x32 = tf.cast(x, "float32")  # float32 even under mixed precision: 1e-8 is 0 in float16
        return tf.cast(x32 * tf.math.rsqrt(tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True) + 1e-8), x.dtype)


def mapping_network(latent_dim=64, w_dim=64, depth=4, name="mapping"):
    """z (batch, latent_dim) -> w (batch, w_dim): PixelNorm, then ``depth`` Dense + LeakyReLU(0.2)
    (He initialisation, so that w keeps about the size of z through the layers)."""
    z = keras.Input(shape=(checks.count("latent_dim", latent_dim),), name="noise")
    h = PixelNorm()(z)
    for _ in range(checks.count("depth", depth)):
        h = layers.LeakyReLU(0.2)(layers.Dense(checks.count("w_dim", w_dim), kernel_initializer="he_normal")(h))
    return keras.Model(z, h, name=name)


@keras.saving.register_keras_serializable("gan_lessons")
class ModulatedConv2D(layers.Layer):
    """A convolution whose weights are scaled per sample by a style (StyleGAN2).

    Inputs [x (b, h, w, c_in), w (b, w_dim)]. The style s = A(w) (an affine map starting at 1)
    modulates the weights, w'_kio = s_i w_kio; ``demodulate`` rescales each output channel to
    unit expected size, w''_kio = w'_kio / sqrt(sum_ki w'_kio^2 + 1e-8). Computed as one shared
    convolution, conv(x * s, W) * d with d_o = 1 / sqrt(sum_i s_i^2 sum_k w_kio^2 + 1e-8).
    ``upsample`` doubles height and width (bilinear) before the convolution.
    """

    def __init__(self, filters, kernel_size=3, demodulate=True, upsample=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = checks.count("filters", filters)
        self.kernel_size = checks.count("kernel_size", kernel_size)
        self.demodulate = bool(demodulate)
        self.upsample = bool(upsample)

    def build(self, input_shape):
        channels = int(input_shape[0][-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, self.kernel_size, channels, self.filters),
                                      initializer=keras.initializers.HeNormal())
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        self.style = layers.Dense(channels, kernel_initializer=STYLE_INIT, bias_initializer="ones", name="style",
                                  dtype=self.dtype_policy)
        self.style.build(input_shape[1])

    def call(self, inputs):
        x, w = inputs
        s = self.style(w)  # (b, c_in)
        x = x * s[:, None, None, :]
        if self.upsample:
            x = tf.cast(tf.image.resize(x, [2 * tf.shape(x)[1], 2 * tf.shape(x)[2]], method="bilinear"), x.dtype)
        y = tf.nn.conv2d(x, self.kernel, strides=1, padding="SAME")
        if self.demodulate:
            # (c_in, c_out): sum_k w_kio^2; the factors in float32 even under mixed precision.
            energy = tf.reduce_sum(tf.square(tf.cast(self.kernel, "float32")), axis=[0, 1])
            demodulation = tf.math.rsqrt(tf.matmul(tf.square(tf.cast(s, "float32")), energy) + 1e-8)
            y = y * tf.cast(demodulation, y.dtype)[:, None, None, :]
        return y + self.bias

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "demodulate": self.demodulate, "upsample": self.upsample}


@keras.saving.register_keras_serializable("gan_lessons")
class NoiseInjection(layers.Layer):
    """x + strength_c * gain * n, with n ~ N(0, 1) one number per pixel (shared by the channels),
    strength_c learned per channel (from 0) and ``gain`` a fixed switch (1 on, 0 off)."""

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed = checks.seed("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        self.strength = self.add_weight(name="strength", shape=(int(input_shape[-1]),), initializer="zeros")
        self.gain = self.add_weight(name="gain", shape=(), initializer="ones", trainable=False)

    def call(self, x):
        shape = tf.shape(x)
        noise = keras.random.normal((shape[0], shape[1], shape[2], 1), seed=self.seed_generator, dtype=x.dtype)
        return x + self.gain * self.strength * noise

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable("gan_lessons")
class ConstantInput(layers.Layer):
    """The synthesis network's start: one learned (size, size, channels) tensor for every sample."""

    def __init__(self, size, channels, **kwargs):
        super().__init__(**kwargs)
        self.size, self.channels = checks.count("size", size), checks.count("channels", channels)

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant", shape=(1, self.size, self.size, self.channels),
                                        initializer=keras.initializers.RandomNormal(stddev=1.0))

    def call(self, w):
        return tf.tile(self.constant, [tf.shape(w)[0], 1, 1, 1])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "channels": self.channels}


@keras.saving.register_keras_serializable("gan_lessons")
class Truncation(layers.Layer):
    """w -> w_avg + psi (w - w_avg): ``w_avg``, the running mean of w the trainer keeps (replicas'
    updates averaged: aggregation "mean"); ``psi`` fixed, 1 (no truncation) unless ``set_psi``."""

    def __init__(self, psi=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_psi = checks.number("psi", psi, 0.0, 1.0)

    def build(self, input_shape):
        self.w_avg = self.add_weight(name="w_avg", shape=(int(input_shape[-1]),), initializer="zeros",
                                     trainable=False, aggregation="mean")
        self.psi = self.add_weight(name="psi", shape=(), initializer=keras.initializers.Constant(self.initial_psi),
                                   trainable=False)

    def call(self, w):
        return self.w_avg + self.psi * (w - self.w_avg)

    def get_config(self):
        return {**super().get_config(), "psi": self.initial_psi}


def synthesis_network(w_dim=64, filters=(128, 64, 32), seed=0, name="synthesis"):
    """Styles (batch, NUM_STYLES, w_dim) -> image (batch, 28, 28, 1) in [-1, 1].

    A learned 7x7 constant; at 7x7, 14x14 and 28x28 (``filters`` channels) two modulated 3x3
    convolutions (the first of 14x14 and 28x28 upsampling), each followed by noise and
    LeakyReLU(0.2); after each resolution a 1x1 "to image" convolution, added to the picture
    so far (StyleGAN2's skip generator); tanh at the end. Style input i drives layer i.
    """
    filters, seed = checks.counts("filters", filters), checks.seed("seed", seed)
    if len(filters) != 3:
        raise checks.BadArgument(f"filters must give 3 channel counts (7x7, 14x14, 28x28); got {filters}.")
    styles = keras.Input(shape=(NUM_STYLES, checks.count("w_dim", w_dim)), name="styles")
    ws = [styles[:, i] for i in range(NUM_STYLES)]
    h = ConstantInput(7, filters[0], name="constant")(ws[0])
    picture = None
    for level, channels in enumerate(filters):
        for j in range(2):
            i = 2 * level + j
            h = ModulatedConv2D(channels, 3, upsample=level > 0 and j == 0, name=f"conv_{i}")([h, ws[i]])
            h = layers.LeakyReLU(0.2)(NoiseInjection(seed=seed + i, name=f"noise_{i}")(h))
        drawn = ModulatedConv2D(1, 1, demodulate=False, name=f"to_image_{level}")([h, ws[2 * level + 1]])
        picture = drawn if picture is None else layers.Add()([layers.UpSampling2D(interpolation="bilinear")(picture),
                                                               drawn])
    return keras.Model(styles, layers.Activation("tanh", name="image")(picture), name=name)


def style_generator(mapping, synthesis, psi=1.0, name="generator"):
    """The contract generator: z -> w = mapping(z) -> truncation(psi) -> the same w at
    every layer -> synthesis -> image."""
    made, taken = tuple(mapping.outputs[0].shape[1:]), tuple(synthesis.inputs[0].shape[1:])
    if taken != (NUM_STYLES,) + made:
        raise checks.BadArgument(f"the mapping network makes w of shape {made}, but the synthesis network takes "
                                 f"styles of shape {taken}; build both with the same w_dim.")
    z = keras.Input(shape=mapping.inputs[0].shape[1:], name="noise")
    w = Truncation(psi, name="truncation")(mapping(z))
    return keras.Model(z, synthesis(layers.RepeatVector(NUM_STYLES, name="broadcast")(w)), name=name)


@keras.saving.register_keras_serializable("gan_lessons")
class MinibatchStd(layers.Layer):
    """Appends one feature map: the standard deviation of each feature over the batch, averaged
    over features and pixels (ProGAN): the discriminator can see a batch's lack of variety."""

    def call(self, x):
        # In float32 even under mixed precision (1e-8 is 0 in float16, and sqrt'(0) is infinite).
        spread = tf.reduce_mean(tf.sqrt(tf.math.reduce_variance(tf.cast(x, "float32"), axis=0) + 1e-8))
        return tf.concat([x, tf.fill(tf.concat([tf.shape(x)[:-1], [1]], 0), tf.cast(spread, x.dtype))], axis=-1)


def discriminator(filters=64, name="discriminator"):
    """Lesson 02's discriminator without BatchNorm (R1 penalises each real image's own gradient),
    with the minibatch standard deviation before a 3x3 convolution at 7x7:
    (28, 28, 1) -> (14, 14, f) -> (7, 7, 2f) -> (7, 7, 2f + 1) -> (7, 7, 2f) -> logit."""
    filters = checks.count("filters", filters)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(x))
    h = layers.LeakyReLU(0.2)(layers.Conv2D(2 * filters, 4, strides=2, padding="same")(h))
    h = layers.LeakyReLU(0.2)(layers.Conv2D(2 * filters, 3, padding="same")(MinibatchStd(name="minibatch_std")(h)))
    return keras.Model(x, layers.Dense(1, name="logit")(layers.Flatten()(h)), name=name)


def parts(generator):
    """(mapping, truncation layer, synthesis) of a ``style_generator`` (or a copy of one)."""
    names = {layer.name for layer in getattr(generator, "layers", ())}
    if not names >= {"mapping", "truncation", "synthesis"}:
        raise checks.BadArgument(f"generator must be a style generator (with style_generator's mapping, truncation "
                                 f"and synthesis); got {generator!r:.60}.")
    return generator.get_layer("mapping"), generator.get_layer("truncation"), generator.get_layer("synthesis")


# ------------------------------------------------------------- style mixing and its uses


def mix(w_first, w_second, crossover):
    """Styles (batch, NUM_STYLES, w_dim): layers before ``crossover`` take ``w_first``, the rest
    ``w_second``. ``crossover`` is a layer from 1 to NUM_STYLES - 1, or, from the trainer, a tensor
    of one layer per sample, shape (batch, 1, 1), where NUM_STYLES means no mixing."""
    if not tf.is_tensor(crossover):  # a layer number: check it and the styles
        crossover = int(checks.choice("crossover", crossover, tuple(range(1, NUM_STYLES))))
        w_first = checks.array("w_first", w_first, "(batch, w_dim)")
        w_second = checks.array("w_second", w_second, str(w_first.shape))  # the same shape
    take_first = tf.range(NUM_STYLES)[None, :, None] < crossover
    return tf.where(take_first, w_first[:, None, :], w_second[:, None, :])


def set_psi(generator, psi):
    """Set the truncation psi in [0, 1] of a style generator (1: none, 0: every sample is w_avg)."""
    parts(generator)[1].psi.assign(checks.number("psi", psi, 0.0, 1.0))


def set_noise(generator, on):
    """Turn the per-pixel noise of every layer on (True) or off (False)."""
    if not isinstance(on, bool):
        raise checks.BadArgument(f"on must be True (noise on) or False (off); got {on!r}.")
    for layer in parts(generator)[2].layers:
        if hasattr(layer, "gain"):  # a NoiseInjection, the package's or a lesson's
            layer.gain.assign(1.0 if on else 0.0)


def styles_of(generator, z):
    """w of noise ``z`` (batch, latent_dim) after the generator's truncation: (batch, w_dim)."""
    mapping, truncation, _ = parts(generator)
    z = checks.array("z", z, f"(batch, {mapping.inputs[0].shape[-1]})")
    return truncation(mapping(z, training=False))


def draw(generator, styles):
    """Images in [-1, 1] (NumPy) from styles (batch, NUM_STYLES, w_dim) or w (batch, w_dim)."""
    synthesis = parts(generator)[2]
    w_dim = synthesis.inputs[0].shape[-1]
    styles = checks.array("styles", styles, f"(batch, {NUM_STYLES}, {w_dim})", f"(batch, {w_dim})")
    if styles.ndim == 2:  # the same w at every layer
        styles = tf.repeat(styles[:, None, :], NUM_STYLES, axis=1).numpy()
    return metrics.generate(synthesis, styles)


def relative_change(variables, start):
    """||theta - theta_0|| / ||theta_0|| over all of a network's weights: how far training moved them,
    in units of their starting size (``variables`` now, ``start`` their values before, in the same order)."""
    now, then = (np.concatenate([np.ravel(np.asarray(v)) for v in vs]) for vs in (variables, start))
    return float(np.linalg.norm(now - then) / np.linalg.norm(then))


# ------------------------------------------------------------------------- the trainer


class StyleGAN(gan.GAN):
    """Lesson 01's game (non-saturating loss) with a style generator, style mixing and R1.

    Each step: one discriminator step with the R1 penalty (r1_weight / 2) E[|grad D(x)|^2] on
    the real images, then one generator step. With probability ``mixing`` a fake takes a second
    w from a random crossover layer on. ``w_avg`` follows the mean w with ``w_avg_momentum``.
    """

    def __init__(self, generator, discriminator, mixing=0.9, r1_weight=0.01, w_avg_momentum=0.995, seed=0):
        super().__init__(generator, discriminator, seed=seed)  # lesson 01's checks, noise and trackers
        self.mapping, self.truncation, self.synthesis = parts(generator)
        self.mixing = checks.number("mixing", mixing, 0.0, 1.0)
        self.r1_weight = checks.number("r1_weight", r1_weight, 0.0)
        self.w_avg_momentum = checks.number("w_avg_momentum", w_avg_momentum, 0.0, 1.0)
        self.r1_tracker = keras.metrics.Mean(name="r1")

    def compile(self, d_optimizer, g_optimizer, mapping_optimizer=None):
        """Lesson 01's; ``mapping_optimizer``, if given, updates the mapping network (StyleGAN's is slower)."""
        super().compile(d_optimizer, g_optimizer)
        self.mapping_optimizer = mapping_optimizer
        if mapping_optimizer is not None:
            mapping_optimizer.build(self.mapping.trainable_variables)

    @property
    def metrics(self):
        return super().metrics + [self.r1_tracker]

    def generator_parts(self):
        """(optimizer, variables) pairs of the generator step."""
        if self.mapping_optimizer is None:
            return [(self.g_optimizer, self.generator.trainable_variables)]
        return [(self.g_optimizer, self.synthesis.trainable_variables),
                (self.mapping_optimizer, self.mapping.trainable_variables)]

    def mixed_styles(self, batch_size):
        """Styles (batch, NUM_STYLES, w_dim) for training, and the w of the first noise."""
        w1, w2 = (self.mapping(self.noise(batch_size), training=True) for _ in "12")
        crossover = keras.random.randint((batch_size, 1, 1), 1, NUM_STYLES, seed=self.seed_generator)
        mixed = keras.random.uniform((batch_size, 1, 1), seed=self.seed_generator) < self.mixing
        return mix(w1, w2, tf.where(mixed, crossover, NUM_STYLES)), w1  # NUM_STYLES: every layer takes w1

    def train_step(self, real):
        batch_size = tf.shape(real)[0]

        # 1. Discriminator: non-saturating loss, plus R1 on the real images.
        fake = self.synthesis(self.mixed_styles(batch_size)[0], training=True)
        with tf.GradientTape() as tape:
            with tf.GradientTape() as r1_tape:
                r1_tape.watch(real)
                real_logits = self.discriminator(real, training=True)
            slopes = r1_tape.gradient(real_logits, real)  # of the sum of the logits
            r1 = tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))
            fake_logits = self.discriminator(fake, training=True)
            d_loss = losses.discriminator_loss(real_logits, fake_logits)
            scaled = self.d_optimizer.scale_loss(d_loss + 0.5 * self.r1_weight * r1)
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # 2. Generator on fresh styles. The mapping network may have its own optimizer: a persistent
        #    tape gives each optimizer the gradient of the loss as it scales it.
        with tf.GradientTape(persistent=True) as tape:
            styles, w = self.mixed_styles(batch_size)
            g_loss = self.generator_loss(self.discriminator(self.synthesis(styles, training=True), training=True))
            scaled = [optimizer.scale_loss(g_loss) for optimizer, _ in self.generator_parts()]
        for (optimizer, variables), loss in zip(self.generator_parts(), scaled):
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

        # 3. The truncation centre follows the mean w.
        m = self.w_avg_momentum
        w_mean = tf.reduce_mean(tf.cast(w, "float32"), axis=0)
        self.truncation.w_avg.assign(m * self.truncation.w_avg + (1.0 - m) * w_mean)

        values = (d_loss, g_loss, tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits)), r1)
        for tracker, value in zip(self.metrics, values):  # d_loss, g_loss, D(x), D(G(z)), r1
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}
