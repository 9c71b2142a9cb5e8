"""Lesson 09: diffusion models, in 2-D and on the digits (in pixels and in a latent space).

Forward process: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, eps ~ N(0, I), for t = 0 .. T-1
(``Schedule`` holds abar). A denoiser network sees (x_t, t[, label]) and predicts eps
(``target="epsilon"``, DDPM's "simple" loss) or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0
(``target="v"``); either way x_0 and eps can be read back from its output (``split``).
Sampling walks from pure noise back to t = 0: ``ddpm_sample`` takes all T ancestral steps,
``ddim_sample`` any smaller number of deterministic steps, with classifier-free guidance.

For the digits the denoiser is a small U-Net with a sinusoidal time embedding and a label
embedding whose extra index ``num_classes`` means "no label" (dropped labels train the
unconditional model that guidance needs). ``autoencoder`` squeezes a digit into a 7x7x4
latent, where the same kind of U-Net runs several times cheaper (latent diffusion).
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, distribute
from gan_lessons.gan import IMAGE_SHAPE

TARGETS = ("epsilon", "v")


def check_target(target):
    return checks.choice("target", target, TARGETS)


# ---------------------------------------------------------------------- the schedule


class Schedule:
    """A noise schedule: abar_t for t = 0 .. T-1, the share of signal power left at step t.

    ``alpha_bars`` must fall strictly from below 1 towards 0. ``betas`` (the noise added at
    each step, 1 - abar_t / abar_{t-1}) and ``alphas`` (1 - beta) follow from it.
    """

    def __init__(self, alpha_bars, name="custom"):
        ab = np.asarray(alpha_bars, dtype=np.float64)
        if ab.ndim != 1 or len(ab) < 2 or not (np.all(ab > 0) and np.all(ab < 1) and np.all(np.diff(ab) < 0)):
            raise checks.BadArgument("alpha_bars must be a falling sequence of at least 2 numbers in (0, 1).")
        self.name, self.alpha_bars = name, ab
        self.alphas = ab / np.concatenate([[1.0], ab[:-1]])
        self.betas = 1.0 - self.alphas

    @property
    def T(self):
        return len(self.alpha_bars)

    @classmethod
    def linear(cls, T=1000, beta_start=1e-4, beta_end=0.02):
        """DDPM's schedule: beta grows linearly from ``beta_start`` to ``beta_end``."""
        T = checks.count("T", T, minimum=2)
        return cls(np.cumprod(1.0 - np.linspace(beta_start, beta_end, T)), "linear")

    @classmethod
    def cosine(cls, T=1000, s=0.008):
        """Nichol and Dhariwal's schedule: abar_t = f(t) / f(0) with f(t) = cos^2((t/T + s) / (1 + s) pi/2),
        each beta capped at 0.999. Signal fades more evenly than with the linear schedule."""
        T = checks.count("T", T, minimum=2)
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
        return cls(np.cumprod(1.0 - betas), "cosine")

    def signal_and_noise(self, t):
        """(sqrt(abar_t), sqrt(1 - abar_t)) for integer steps t, as float32 arrays."""
        ab = self.alpha_bars[np.asarray(t)]
        return np.sqrt(ab).astype(np.float32), np.sqrt(1 - ab).astype(np.float32)

    def noisy(self, x0, t, noise):
        """q(x_t | x_0) in closed form: sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise (NumPy)."""
        a, s = self.signal_and_noise(t)
        shape = (-1,) + (1,) * (np.ndim(x0) - 1)
        return a.reshape(shape) * x0 + s.reshape(shape) * noise


def training_target(x0, noise, a, s, target):
    """What the denoiser learns to output: the noise (epsilon) or v = a eps - s x_0."""
    return noise if target == "epsilon" else a * noise - s * x0


def split(prediction, x_t, a, s, target):
    """The denoiser's output read back as (x_0 estimate, eps estimate), for x_t = a x_0 + s eps."""
    if target == "epsilon":
        return (x_t - s * prediction) / a, prediction
    return a * x_t - s * prediction, s * x_t + a * prediction  # a^2 + s^2 = 1


# ------------------------------------------------------------------ the networks


@keras.saving.register_keras_serializable("gan_lessons")
class SinusoidalEmbedding(layers.Layer):
    """A step number t -> (sin(t f_0), .., sin(t f_{k-1}), cos(t f_0), .., cos(t f_{k-1})), k = dim / 2,
    with frequencies f_i = 10000^(-i/k) from 1 down to about 1/10000 (the Transformer's
    position code): nearby steps get similar vectors, and every step a distinct one."""

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
    emb = layers.Dense(time_dim, activation="swish")(SinusoidalEmbedding(time_dim)(t))
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
    """(x_t, t, label) -> a prediction of x_t's shape. One residual block per level on the way
    down (halving the size between levels), one in the middle, one per level on the way up
    with the same-size features of the way down concatenated (the U-Net's skips). The step's
    sinusoidal embedding plus a learned label embedding (index ``num_classes`` = no label)
    enters every block. ``num_classes=None``: unconditional, no label input."""
    filters = checks.counts("filters", filters)
    x = keras.Input(shape=tuple(input_shape), name="noisy")
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
    transposed ones. Both ends are linear (no tanh): a tanh output often stalls on a blank
    digit early in training; decoded images are clipped to [-1, 1] instead."""
    f1, f2 = checks.counts("filters", filters)
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
    x = keras.Input(shape=IMAGE_SHAPE)
    model = keras.Model(x, decoder(encoder(x)))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mae")
    return model.fit(images, images, epochs=checks.count("epochs", epochs), batch_size=batch_size, shuffle=True,
                     verbose=verbose, callbacks=list(callbacks))


def encode(encoder, images, batch_size=500):
    return np.concatenate([np.asarray(encoder(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def decode(decoder, latents, batch_size=500):
    """Latents -> images clipped to [-1, 1]."""
    out = [np.asarray(decoder(latents[i:i + batch_size], training=False)) for i in range(0, len(latents), batch_size)]
    return np.clip(np.concatenate(out), -1.0, 1.0)


# ------------------------------------------------------------------ the trainer


class Diffusion(keras.Model):
    """Trains a denoiser: draw a step t uniformly and fresh noise for every sample, make x_t,
    and regress the network's output on the target (mean squared error, the "simple" loss).
    ``label_dropout``: the share of samples whose label is replaced by "no label", so that one
    network learns both the conditional and the unconditional prediction (for guidance).
    Data: x_0 batches, or (x_0, labels) for a conditional denoiser."""

    def __init__(self, denoiser, schedule, target="epsilon", label_dropout=0.1, seed=0):
        super().__init__()
        self.denoiser = denoiser
        self.schedule = schedule
        self.target = check_target(target)
        self.num_classes = num_classes_of(denoiser)
        self.conditional = self.num_classes is not None
        self.label_dropout = checks.number("label_dropout", label_dropout, 0.0, 1.0)
        self.sqrt_ab = tf.constant(np.sqrt(schedule.alpha_bars), "float32")
        self.sqrt_1m_ab = tf.constant(np.sqrt(1 - schedule.alpha_bars), "float32")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True  # the denoiser is built; Keras's checkpoint callback needs this

    def compile(self, optimizer, steps_per_execution=1):
        """``steps_per_execution`` > 1 runs that many steps in one compiled call: faster for a
        small network, but callbacks then see one batch per call."""
        # (Under the mixed_float16 policy Keras wraps the optimizer in a LossScaleOptimizer.)
        super().compile(optimizer=optimizer, steps_per_execution=steps_per_execution)
        self.optimizer.build(self.denoiser.trainable_variables)  # so that checkpoints hold its state

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, batch):
        x0, labels = batch if self.conditional else (batch, None)
        n = tf.shape(x0)[0]
        # 1. A random step for every sample, fresh noise, and x_t in closed form. (Under several
        #    replicas each draws for the global batch and keeps its own rows.)
        g = distribute.global_size(n)
        t = distribute.rows(keras.random.randint((g,), 0, self.schedule.T, seed=self.seed_generator))
        shape = tf.concat([[n], tf.ones(tf.rank(x0) - 1, "int32")], 0)
        a, s = tf.reshape(tf.gather(self.sqrt_ab, t), shape), tf.reshape(tf.gather(self.sqrt_1m_ab, t), shape)
        noise = distribute.rows(keras.random.normal(tf.concat([[g], tf.shape(x0)[1:]], 0), seed=self.seed_generator))
        x_t = a * x0 + s * noise
        inputs = [x_t, tf.cast(t, "float32")]
        if self.conditional:
            # 2. Drop some labels: "no label" is the extra index num_classes.
            drop = distribute.rows(keras.random.uniform((g,), seed=self.seed_generator)) < self.label_dropout
            inputs.append(tf.where(drop, self.num_classes, tf.cast(tf.reshape(labels, (-1,)), "int32")))
        # 3. Regress the output on the target.
        with tf.GradientTape() as tape:
            prediction = self.denoiser(inputs, training=True)
            target = training_target(x0, noise, a, s, self.target)
            loss = tf.reduce_mean(tf.square(tf.cast(prediction, "float32") - target))
        grads = distribute.gradients(tape, loss, self.denoiser.trainable_variables, self.optimizer)
        self.optimizer.apply_gradients(zip(grads, self.denoiser.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


# ------------------------------------------------------------------ sampling


def num_classes_of(denoiser):
    """The number of classes a conditional denoiser knows (its label input's "no label" index), or None."""
    if len(denoiser.inputs) < 3:
        return None
    return next(layer for layer in denoiser.layers if isinstance(layer, layers.Embedding)).input_dim - 1


def check_guidance(guidance):
    return checks.number("guidance", guidance, 0.0)


def check_steps(steps, schedule):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= schedule.T:
        raise checks.BadArgument(f"steps must be a whole number from 1 to {schedule.T} (the schedule's T); "
                                 f"got {steps!r}.")
    return int(steps)


def check_labels(labels, num_classes):
    y = np.asarray(labels).reshape(-1)
    if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
        raise checks.BadArgument(f"labels must be whole numbers from 0 to {num_classes - 1}; got "
                                 f"{sorted(set(y.tolist()))[:5] if y.dtype.kind in 'iuf' else y.dtype}.")
    return y.astype(np.int32)


def guided_prediction(denoiser, x, t, labels, guidance, num_classes):
    """The denoiser's output at step t; with labels, guided: u + w (c - u), where c is the
    prediction for the label and u for "no label" (w = 1: plain conditional, w = 0: unconditional).
    ``predict_on_batch`` runs the network as one compiled graph, several times faster than a
    plain call for a small network."""
    time = np.full((len(x),), t, np.float32)
    if labels is None:
        return denoiser.predict_on_batch([x, time])
    if guidance == 1.0:
        return denoiser.predict_on_batch([x, time, labels])
    none = np.full_like(labels, num_classes)
    if guidance == 0.0:
        return denoiser.predict_on_batch([x, time, none])
    both = denoiser.predict_on_batch([np.concatenate([x, x]), np.concatenate([time, time]),
                                      np.concatenate([labels, none])])
    conditional, unconditional = both[:len(x)], both[len(x):]
    return unconditional + guidance * (conditional - unconditional)


def initial_noise(denoiser, n, labels, guidance, seed):
    """x_T ~ N(0, I) for ``n`` samples (one per label when labels are given; the classes in turn
    when a conditional denoiser gets none), with the labels and guidance checked."""
    num_classes = num_classes_of(denoiser)
    if num_classes is not None:
        labels = check_labels(np.arange(n) % num_classes if labels is None else labels, num_classes)
        n = len(labels)
    elif labels is not None:
        raise checks.BadArgument("this denoiser takes no labels (it is unconditional); give labels=None.")
    n = checks.count("n", n)
    guidance = check_guidance(guidance)
    x = np.random.default_rng(seed).standard_normal((n,) + tuple(denoiser.inputs[0].shape[1:])).astype(np.float32)
    return x, labels, guidance, num_classes


def ddpm_sample(denoiser, schedule, n=1000, labels=None, target="epsilon", guidance=1.0, seed=0, keep=()):
    """Ancestral sampling (DDPM's Algorithm 2): from x_T ~ N(0, I), for t = T-1 .. 0,
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z, with no z at
    the last step. T network calls. Returns the samples, and a dict {t: x_t} for the steps in ``keep``."""
    check_target(target)
    x, labels, guidance, num_classes = initial_noise(denoiser, n, labels, guidance, seed)
    rng = np.random.default_rng(seed + 1)
    kept = {schedule.T: x.copy()} if schedule.T in keep else {}
    for t in reversed(range(schedule.T)):
        a, s = schedule.signal_and_noise(t)
        _, eps = split(guided_prediction(denoiser, x, t, labels, guidance, num_classes), x, a, s, target)
        x = (x - schedule.betas[t] / s * eps) / np.sqrt(schedule.alphas[t])
        if t > 0:
            x = x + np.sqrt(schedule.betas[t]) * rng.standard_normal(x.shape)
        x = x.astype(np.float32)
        if t in keep:
            kept[t] = x.copy()
    return (x, kept) if keep else x


def ddim_sample(denoiser, schedule, n=1000, labels=None, steps=25, target="v", guidance=1.0, seed=0, clip=None,
                batch_size=500):
    """DDIM (eta = 0): visit ``steps`` evenly spaced steps from T-1 down to 0; at each, estimate
    x_0 and eps from the network and jump to the next visited step with the same eps:
    x_{t'} = sqrt(abar_t') x_0 + sqrt(1 - abar_t') eps (abar = 1 after the last). Deterministic
    given the starting noise. ``clip``: clip the x_0 estimates to [-clip, clip] (pixels: 1).
    Returns the samples (and the labels they were drawn for, when conditional)."""
    steps = check_steps(steps, schedule)
    check_target(target)
    x, labels, guidance, num_classes = initial_noise(denoiser, n, labels, guidance, seed)
    times = np.round(np.linspace(schedule.T - 1, 0, steps)).astype(int)
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        lb = None if labels is None else labels[start:start + batch_size]
        for i, t in enumerate(times):
            a, s = schedule.signal_and_noise(t)
            x0, eps = split(guided_prediction(denoiser, xb, t, lb, guidance, num_classes), xb, a, s, target)
            if clip is not None:
                x0 = np.clip(x0, -clip, clip)
            a_next, s_next = (1.0, 0.0) if i == len(times) - 1 else schedule.signal_and_noise(times[i + 1])
            xb = (a_next * x0 + s_next * eps).astype(np.float32)
        out.append(xb)
    samples = np.concatenate(out)
    return samples if labels is None else (samples, labels)
