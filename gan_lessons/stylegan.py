"""Lesson 08: a style-based generator (StyleGAN's ideas at digit scale).

z -> mapping network -> w. The synthesis network starts from a learned constant and
draws at 7x7, 14x14 and 28x28; each of its ``NUM_STYLES`` layers receives its own copy
of w (so copies can differ: style mixing), turns it into per-channel styles, and uses
them to modulate its convolution's weights (StyleGAN2's modulation and demodulation,
the fix for AdaIN's droplets; ``AdaIN`` is here too, for comparison). Per-pixel noise
with a learned strength per channel adds detail that the style does not fix. W is
truncated towards its running mean ``w_avg`` by ``psi``.

``style_generator`` joins mapping and synthesis into the course's unconditional
contract: noise (batch, latent_dim) -> image (batch, 28, 28, 1) in [-1, 1].
"""

import keras
import tensorflow as tf
from keras import layers

from gan_lessons import checks, distribute, losses, metrics
from gan_lessons.gan import IMAGE_SHAPE

NUM_STYLES = 6
"""Style inputs of the synthesis network: two layers at each of 7x7, 14x14 and 28x28."""
LAYER_SIZES = (7, 7, 14, 14, 28, 28)
"""The resolution each style input acts at."""


STYLE_INIT = "lecun_normal"
"""The affine maps w -> style start with weights of variance 1/w_dim, so that a style's
numbers spread about as much as w's (around 1, the bias's start)."""


def check_psi(psi):
    return checks.number("psi", psi, 0.0, 1.0)


def check_crossover(crossover):
    """A crossover layer c in 1..NUM_STYLES-1: layers before c take the first w, the rest the second."""
    if isinstance(crossover, bool) or not isinstance(crossover, int) or not 1 <= crossover < NUM_STYLES:
        raise checks.BadArgument(f"crossover must be a layer index from 1 to {NUM_STYLES - 1} (layers before it "
                                 f"take the first style, the rest the second); got {crossover!r}.")
    return crossover


# ------------------------------------------------------------------ the mapping network


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


# ------------------------------------------------------------ style: AdaIN or modulation


@keras.saving.register_keras_serializable("gan_lessons")
class AdaIN(layers.Layer):
    """Adaptive instance normalisation (StyleGAN 1): inputs [x (b, h, w, c), w (b, w_dim)].

    Each channel of each image is normalised to mean 0 and standard deviation 1 over its
    pixels, then scaled by y_s and shifted by y_b, two affine maps of w:
    AdaIN(x, w) = y_s(w) * (x - mean(x)) / std(x) + y_b(w).
    """

    def build(self, input_shape):
        channels = int(input_shape[0][-1])
        self.scale = layers.Dense(channels, kernel_initializer=STYLE_INIT, bias_initializer="ones", name="scale",
                                  dtype=self.dtype_policy)
        self.shift = layers.Dense(channels, kernel_initializer=STYLE_INIT, name="shift", dtype=self.dtype_policy)
        self.scale.build(input_shape[1])
        self.shift.build(input_shape[1])

    def call(self, inputs):
        x, w = inputs
        x32 = tf.cast(x, "float32")  # statistics in float32 even under mixed precision
        mean, variance = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
        normalised = tf.cast((x32 - mean) * tf.math.rsqrt(variance + 1e-8), x.dtype)
        return self.scale(w)[:, None, None, :] * normalised + self.shift(w)[:, None, None, :]


@keras.saving.register_keras_serializable("gan_lessons")
class ModulatedConv2D(layers.Layer):
    """A convolution whose weights are scaled per sample by a style (StyleGAN2).

    Inputs [x (b, h, w, c_in), w (b, w_dim)]. The style s = A(w) (one number per input
    channel, an affine map starting at 1) modulates the weights, w'_kio = s_i w_kio; with
    ``demodulate`` each output channel is then rescaled to unit expected size,
    w''_kio = w'_kio / sqrt(sum_ki w'_kio^2 + 1e-8). Scaling the weights of input
    channel i by s_i is the same as scaling that input channel, and dividing output
    channel o's weights by a number is the same as dividing its output, so the layer
    computes conv(x * s, W) * d with d_o = 1 / sqrt(sum_i s_i^2 sum_k w_kio^2 + 1e-8):
    one shared convolution for the whole batch. ``upsample`` doubles height and width
    (bilinear) before the convolution.
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


# ------------------------------------------------------------ noise, constant, truncation


@keras.saving.register_keras_serializable("gan_lessons")
class NoiseInjection(layers.Layer):
    """x + strength_c * gain * n, with n ~ N(0, 1) one number per pixel (shared by the
    channels) and strength_c a learned number per channel that starts at 0. ``gain`` is
    a fixed switch (1 on, 0 off) that the lesson turns to look at the noise's effect."""

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        self.strength = self.add_weight(name="strength", shape=(int(input_shape[-1]),), initializer="zeros")
        self.gain = self.add_weight(name="gain", shape=(), initializer="ones", trainable=False)

    def call(self, x):
        shape = tf.shape(x)  # noise for the global batch, this replica's rows (see distribute)
        noise = distribute.rows(keras.random.normal((distribute.global_size(shape[0]), shape[1], shape[2], 1),
                                                    seed=self.seed_generator, dtype=x.dtype))
        return x + self.gain * self.strength * noise

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable("gan_lessons")
class ConstantInput(layers.Layer):
    """The synthesis network's start: one learned (size, size, channels) tensor, the same
    for every sample (repeated to the batch size of its input)."""

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
    """w -> w_avg + psi (w - w_avg). ``w_avg`` is the running mean of w that the trainer
    keeps; ``psi`` (fixed, 1 by default: no truncation) is set with ``set_psi``."""

    def __init__(self, psi=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_psi = check_psi(psi)

    def build(self, input_shape):
        self.w_avg = self.add_weight(name="w_avg", shape=(int(input_shape[-1]),), initializer="zeros",
                                     trainable=False, aggregation="only_first_replica")
        self.psi = self.add_weight(name="psi", shape=(), initializer=keras.initializers.Constant(self.initial_psi),
                                   trainable=False)

    def call(self, w):
        return self.w_avg + self.psi * (w - self.w_avg)

    def get_config(self):
        return {**super().get_config(), "psi": self.initial_psi}


# ------------------------------------------------------------------------ the networks


def synthesis_network(w_dim=64, filters=(128, 64, 32), seed=0, name="synthesis"):
    """Styles (batch, NUM_STYLES, w_dim) -> image (batch, 28, 28, 1) in [-1, 1].

    A learned 7x7 constant; at 7x7, 14x14 and 28x28 (``filters`` channels each) two
    modulated 3x3 convolutions, the first of 14x14 and 28x28 upsampling, each followed by
    per-pixel noise and LeakyReLU(0.2). After each resolution a 1x1 modulated convolution
    without demodulation ("to image") draws a picture, added to the upsampled picture of
    the resolution before (StyleGAN2's skip generator); tanh at the end. Style input i
    drives layer i; the 28x28 "to image" shares the last layer's style.
    """
    filters = checks.counts("filters", filters)
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
    z = keras.Input(shape=mapping.inputs[0].shape[1:], name="noise")
    w = Truncation(psi, name="truncation")(mapping(z))
    return keras.Model(z, synthesis(layers.RepeatVector(NUM_STYLES, name="broadcast")(w)), name=name)


@keras.saving.register_keras_serializable("gan_lessons")
class MinibatchStd(layers.Layer):
    """Appends one feature map: the standard deviation of each feature over the batch,
    averaged over features and pixels (ProGAN, StyleGAN). A batch of near-identical
    fakes shows a small number there, so the discriminator can see a lack of variety
    that no single image reveals."""

    def call(self, x):
        # In float32 even under mixed precision (1e-8 is 0 in float16, and sqrt'(0) is infinite).
        spread = tf.reduce_mean(tf.sqrt(tf.math.reduce_variance(tf.cast(x, "float32"), axis=0) + 1e-8))
        return tf.concat([x, tf.fill(tf.concat([tf.shape(x)[:-1], [1]], 0), tf.cast(spread, x.dtype))], axis=-1)


def discriminator(filters=64, name="discriminator"):
    """Lesson 02's discriminator without BatchNorm (R1 penalises each real image's own
    gradient, which BatchNorm would tie to the rest of the batch), with StyleGAN's
    minibatch standard deviation before its 3x3 convolution at 7x7:
    (28, 28, 1) -> (14, 14, f) -> (7, 7, 2f) -> (7, 7, 2f + 1) -> (7, 7, 2f) -> logit."""
    filters = checks.count("filters", filters)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(x))
    h = layers.LeakyReLU(0.2)(layers.Conv2D(2 * filters, 4, strides=2, padding="same")(h))
    h = layers.LeakyReLU(0.2)(layers.Conv2D(2 * filters, 3, padding="same")(MinibatchStd(name="minibatch_std")(h)))
    return keras.Model(x, layers.Dense(1, name="logit")(layers.Flatten()(h)), name=name)


# -------------------------------------------------------------------- using the parts


def parts(generator):
    """(mapping, truncation layer, synthesis) of a ``style_generator`` (or a copy of one)."""
    return generator.get_layer("mapping"), generator.get_layer("truncation"), generator.get_layer("synthesis")


def set_psi(generator, psi):
    """Set the truncation psi in [0, 1] of a style generator (1: none, 0: every sample is w_avg)."""
    parts(generator)[1].psi.assign(check_psi(psi))


def set_noise(generator, on):
    """Turn the per-pixel noise of every layer on (True) or off (False)."""
    for layer in parts(generator)[2].layers:
        if isinstance(layer, NoiseInjection):
            layer.gain.assign(1.0 if on else 0.0)


def mix(w_first, w_second, crossover):
    """Styles (batch, NUM_STYLES, w_dim): layers 0..crossover-1 take ``w_first``, the rest ``w_second``."""
    crossover = check_crossover(crossover)
    first = tf.convert_to_tensor(w_first, tf.float32)
    second = tf.convert_to_tensor(w_second, tf.float32)
    if first.shape != second.shape or first.shape.rank != 2:
        raise checks.BadArgument(f"w_first and w_second must be (batch, w_dim) arrays of one shape; got "
                                 f"{tuple(first.shape)} and {tuple(second.shape)}.")
    take_first = tf.range(NUM_STYLES)[None, :, None] < crossover
    return tf.where(take_first, first[:, None, :], second[:, None, :])


def styles_of(generator, z):
    """w of noise ``z`` (batch, latent_dim) after the generator's truncation: (batch, w_dim)."""
    mapping, truncation, _ = parts(generator)
    expected = int(mapping.inputs[0].shape[-1])
    z = tf.convert_to_tensor(z, tf.float32)
    if z.shape.rank != 2 or z.shape[-1] != expected:
        raise checks.BadArgument(f"z must be a (batch, {expected}) array of noise; got shape {tuple(z.shape)}.")
    return truncation(mapping(z, training=False))


def draw(generator, styles):
    """Images in [-1, 1] (NumPy) from styles (batch, NUM_STYLES, w_dim) or w (batch, w_dim)."""
    styles = tf.convert_to_tensor(styles, tf.float32)
    if styles.shape.rank == 2:
        styles = tf.repeat(styles[:, None, :], NUM_STYLES, axis=1)
    return metrics.generate(parts(generator)[2], styles.numpy())


# ------------------------------------------------------------------------- the trainer


class StyleGAN(keras.Model):
    """The non-saturating GAN game with a style generator, style mixing and R1.

    Each step: one discriminator step with the R1 penalty (r1_weight / 2) E[|grad D(x)|^2]
    on the real images, then one generator step. Fakes use style mixing: with
    probability ``mixing`` a sample takes a second w from a second z from a random
    crossover layer on, so the network cannot assume that neighbouring layers share a
    style. ``w_avg`` (the truncation centre) follows the batches' mean w with
    ``w_avg_momentum``.
    """

    def __init__(self, generator, discriminator, mixing=0.9, r1_weight=0.01, w_avg_momentum=0.995, seed=0):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.mapping, self.truncation, self.synthesis = parts(generator)
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.mixing = checks.number("mixing", mixing, 0.0, 1.0)
        self.r1_weight = checks.number("r1_weight", r1_weight, 0.0)
        self.w_avg_momentum = checks.number("w_avg_momentum", w_avg_momentum, 0.0, 1.0)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "r1", "D(x)", "D(G(z))")}
        self.built = True

    def compile(self, *, d_optimizer, g_optimizer, mapping_optimizer=None):
        """``mapping_optimizer`` updates the mapping network (StyleGAN gives it a learning rate
        100 times smaller than the rest); None: ``g_optimizer`` updates it with the synthesis."""
        super().compile(optimizer=None)
        d_optimizer, g_optimizer = distribute.for_policy(d_optimizer), distribute.for_policy(g_optimizer)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.mapping_optimizer = mapping_optimizer = (None if mapping_optimizer is None
                                                      else distribute.for_policy(mapping_optimizer))
        d_optimizer.build(self.discriminator.trainable_variables)
        if mapping_optimizer is None:
            g_optimizer.build(self.generator.trainable_variables)
        else:
            g_optimizer.build(self.synthesis.trainable_variables)
            mapping_optimizer.build(self.mapping.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def mixed_styles(self, batch_size):
        """Styles (batch, NUM_STYLES, w_dim) for training, and the mean w of the global batch.
        (Under several replicas each draws the global batch's randomness and keeps its rows.)"""
        n = distribute.global_size(batch_size)
        z1, z2 = (distribute.rows(keras.random.normal((n, self.latent_dim), seed=self.seed_generator)) for _ in "12")
        w1, w2 = self.mapping(z1, training=True), self.mapping(z2, training=True)
        crossover = distribute.rows(keras.random.randint((n, 1, 1), 1, NUM_STYLES, seed=self.seed_generator))
        mixed = distribute.rows(keras.random.uniform((n, 1, 1), seed=self.seed_generator)) < self.mixing
        crossover = tf.where(mixed, crossover, NUM_STYLES)  # NUM_STYLES: every layer takes w1
        take_first = tf.range(NUM_STYLES)[None, :, None] < crossover
        return tf.where(take_first, w1[:, None, :], w2[:, None, :]), distribute.mean(tf.reduce_mean(w1, axis=0))

    def train_step(self, real):
        batch_size = tf.shape(real)[0]

        # 1. Discriminator: non-saturating loss, plus R1 on the real images.
        styles, _ = self.mixed_styles(batch_size)
        fake = self.synthesis(styles, training=True)
        with tf.GradientTape() as tape:
            with tf.GradientTape() as r1_tape:
                r1_tape.watch(real)
                real_logits = self.discriminator(real, training=True)
            slopes = r1_tape.gradient(real_logits, real)  # of the sum of the logits
            r1 = tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))
            fake_logits = self.discriminator(fake, training=True)
            d_loss = losses.discriminator_loss(real_logits, fake_logits)
            total = d_loss + 0.5 * self.r1_weight * r1
        grads = distribute.gradients(tape, total, self.discriminator.trainable_variables, self.d_optimizer)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # 2. Generator (mapping and synthesis) on fresh styles.
        with tf.GradientTape() as tape:
            styles, w_mean = self.mixed_styles(batch_size)
            g_logits = self.discriminator(self.synthesis(styles, training=True), training=True)
            g_loss = losses.generator_loss(g_logits)
        if self.mapping_optimizer is None:
            grads = distribute.gradients(tape, g_loss, self.generator.trainable_variables, self.g_optimizer)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        else:
            synthesis, mapping = self.synthesis.trainable_variables, self.mapping.trainable_variables
            grads = distribute.gradients(tape, g_loss, synthesis + mapping, self.g_optimizer)
            self.g_optimizer.apply_gradients(zip(grads[:len(synthesis)], synthesis))
            mapping_grads = distribute.rescale(grads[len(synthesis):], self.g_optimizer, self.mapping_optimizer)
            self.mapping_optimizer.apply_gradients(zip(mapping_grads, mapping))

        # 3. The truncation centre follows the mean w.
        m = self.w_avg_momentum
        self.truncation.w_avg.assign(m * self.truncation.w_avg + (1.0 - m) * tf.cast(w_mean, "float32"))

        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("r1", r1),
                            ("D(x)", tf.reduce_mean(tf.sigmoid(real_logits))),
                            ("D(G(z))", tf.reduce_mean(tf.sigmoid(fake_logits)))):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}
