"""Lesson 09: diffusion models, in 2-D and on the digits (in pixels and in a latent space).

Forward process: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, eps ~ N(0, I), for t = 0 .. T-1
(``Schedule``). A denoiser sees (x_t, t[, label]) and predicts v = sqrt(abar_t) eps -
sqrt(1 - abar_t) x_0 (``target="v"``, every default) or eps (``"epsilon"``, DDPM's "simple" loss);
``split`` reads x_0 and eps back from either. ``ddpm_sample`` walks back from noise in all T
steps, ``ddim_sample`` in fewer deterministic ones, with classifier-free guidance. For the digits
the denoiser is a small U-Net whose label index ``num_classes`` means "no label"; ``autoencoder``
squeezes a digit into a 7x7x4 latent, where the U-Net runs several times cheaper. The networks
are written in ``gan_lessons.diffusion_networks`` and exported here too.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, metrics
from gan_lessons.diffusion_networks import (SinusoidalEmbedding, autoencoder, decode, encode,  # noqa: F401
                                            res_block, toy_denoiser, train_autoencoder, unet)

TARGETS = ("v", "epsilon")
"""What a denoiser learns to predict; the trainer and both samplers default to the first."""


def check_target(target):
    return checks.choice("target", target, TARGETS)


# ---------------------------------------------------------------------- the schedule


class Schedule:
    """A noise schedule: abar_t for t = 0 .. T-1, the share of signal power left at step t.

    ``alpha_bars`` must fall strictly from below 1 towards 0. ``betas`` (the noise added at
    each step, 1 - abar_t / abar_{t-1}) and ``alphas`` (1 - beta) follow from it.
    """

    def __init__(self, alpha_bars, name="custom"):
        try:
            ab = np.asarray(alpha_bars, dtype=np.float64)
        except (TypeError, ValueError):
            ab = np.zeros(0)
        if ab.ndim != 1 or len(ab) < 2 or not (np.all(ab > 0) and np.all(ab < 1) and np.all(np.diff(ab) < 0)):
            raise checks.BadArgument(f"alpha_bars must be a falling sequence of at least 2 numbers in (0, 1); got "
                                     f"{alpha_bars!r:.60}.")
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
        beta_start = checks.number("beta_start", beta_start, 0.0, 1.0, low_open=True, high_open=True)
        beta_end = checks.number("beta_end", beta_end, beta_start, 1.0, high_open=True)
        return cls(np.cumprod(1.0 - np.linspace(beta_start, beta_end, T)), "linear")

    @classmethod
    def cosine(cls, T=1000, s=0.008):
        """Nichol and Dhariwal's schedule: abar_t = f(t) / f(0) with f(t) = cos^2((t/T + s) / (1 + s) pi/2),
        each beta capped at 0.999. Signal fades more evenly than with the linear schedule."""
        T, s = checks.count("T", T, minimum=2), checks.number("s", s, 0.0, low_open=True)
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
        return cls(np.cumprod(1.0 - betas), "cosine")

    def signal_and_noise(self, t):
        """(sqrt(abar_t), sqrt(1 - abar_t)) for integer steps t, as float32 arrays."""
        t = np.asarray(t)
        if t.dtype.kind not in "iu" or t.size and not 0 <= t.min() <= t.max() < self.T:
            raise checks.BadArgument(f"t must hold whole steps from 0 to {self.T - 1}; got {t.tolist()!r:.60}.")
        ab = self.alpha_bars[t]
        return np.sqrt(ab).astype(np.float32), np.sqrt(1 - ab).astype(np.float32)

    def noisy(self, x0, t, noise):
        """q(x_t | x_0) in closed form: sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise (NumPy)."""
        a, s = self.signal_and_noise(t)
        shape = (-1,) + (1,) * (np.ndim(x0) - 1)
        return a.reshape(shape) * x0 + s.reshape(shape) * noise


def check_schedule(schedule):
    """``schedule`` if it is a noise schedule (a ``Schedule``, the package's or a lesson's)."""
    if not isinstance(getattr(schedule, "alpha_bars", None), np.ndarray):
        raise checks.BadArgument(f"schedule must be a Schedule (for example Schedule.cosine(1000)); got "
                                 f"{schedule!r:.60}.")
    return schedule


def training_target(x0, noise, a, s, target):
    """What the denoiser learns to output: the noise (epsilon) or v = a eps - s x_0."""
    check_target(target)
    return noise if target == "epsilon" else a * noise - s * x0


def split(prediction, x_t, a, s, target):
    """The denoiser's output read back as (x_0 estimate, eps estimate), for x_t = a x_0 + s eps."""
    if check_target(target) == "epsilon":
        return (x_t - s * prediction) / a, prediction
    return a * x_t - s * prediction, s * x_t + a * prediction  # a^2 + s^2 = 1


# ------------------------------------------------------------------ the trainer


class Diffusion(keras.Model):
    """Trains a denoiser: draw a step t uniformly and fresh noise for every sample, make x_t, and
    regress the output on the target (mean squared error). ``label_dropout``: the share of labels
    replaced by "no label", so that one network also learns the unconditional prediction (for
    guidance). Data: x_0 batches, or (x_0, labels) for a conditional denoiser."""

    def __init__(self, denoiser, schedule, target="v", label_dropout=0.1, seed=0):
        super().__init__()
        self.denoiser = denoiser
        self.schedule = check_schedule(schedule)
        self.target = check_target(target)
        self.num_classes = num_classes_of(denoiser)  # None for an unconditional denoiser
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
        super().compile(optimizer=optimizer, steps_per_execution=steps_per_execution)
        self.optimizer.build(self.denoiser.trainable_variables)  # so that checkpoints hold its state

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, batch):
        x0, labels = batch if self.conditional else (batch, None)
        n = tf.shape(x0)[0]
        # 1. A random step for every sample, fresh noise, and x_t in closed form.
        t = keras.random.randint((n,), 0, self.schedule.T, seed=self.seed_generator)
        shape = tf.concat([[n], tf.ones(tf.rank(x0) - 1, "int32")], 0)
        a, s = tf.reshape(tf.gather(self.sqrt_ab, t), shape), tf.reshape(tf.gather(self.sqrt_1m_ab, t), shape)
        noise = keras.random.normal(tf.shape(x0), seed=self.seed_generator)
        x_t = a * x0 + s * noise
        inputs = [x_t, tf.cast(t, "float32")]
        if self.conditional:
            # 2. Drop some labels: "no label" is the extra index num_classes.
            drop = keras.random.uniform((n,), seed=self.seed_generator) < self.label_dropout
            inputs.append(tf.where(drop, self.num_classes, tf.cast(tf.reshape(labels, (-1,)), "int32")))
        # 3. Regress the output on the target (in float32, whatever the network's precision).
        with tf.GradientTape() as tape:
            prediction = tf.cast(self.denoiser(inputs, training=True), "float32")
            loss = tf.reduce_mean(tf.square(prediction - training_target(x0, noise, a, s, self.target)))
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.denoiser.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.denoiser.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


# ------------------------------------------------------------------ sampling


def num_classes_of(denoiser):
    """The classes a denoiser knows (its "no label" index), None if unconditional; checks that
    it is a Keras model of (x_t, t[, label]) whose prediction has x_t's shape."""
    metrics.as_model("denoiser", denoiser, inputs=(2, 3))
    made, noisy = tuple(denoiser.outputs[0].shape[1:]), tuple(denoiser.inputs[0].shape[1:])
    if made != noisy:
        raise checks.BadArgument(f"the denoiser {denoiser.name!r} predicts shape {made} for x_t of shape {noisy}; "
                                 "its prediction must have x_t's shape.")
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
    """The denoiser's output at step t; with labels, guided: u + w (c - u), c the prediction for the
    label and u for "no label" (w = 1: conditional, w = 0: unconditional). ``predict_on_batch``
    runs the network as one compiled graph, several times faster than a plain call."""
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


def initial_noise(denoiser, schedule, n, labels, guidance, seed, target):
    """x_T ~ N(0, I) for ``n`` samples (one per label when labels are given; the classes in turn
    when a conditional denoiser gets none), with the samplers' arguments checked."""
    check_schedule(schedule), check_target(target)
    num_classes = num_classes_of(denoiser)  # and the denoiser checked
    if num_classes is not None:
        labels = np.arange(checks.count("n", n)) % num_classes if labels is None else labels
        labels = check_labels(labels, num_classes)
        n = len(labels)
    elif labels is not None:
        raise checks.BadArgument("this denoiser takes no labels (it is unconditional); give labels=None.")
    shape = (checks.count("n", n),) + tuple(denoiser.inputs[0].shape[1:])
    x = np.random.default_rng(checks.seed("seed", seed)).standard_normal(shape).astype(np.float32)
    return x, labels, check_guidance(guidance), num_classes


def ddpm_sample(denoiser, schedule, n=1000, labels=None, target="v", guidance=1.0, seed=0, keep=()):
    """Ancestral sampling (DDPM's Algorithm 2): from x_T ~ N(0, I), for t = T-1 .. 0,
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z, with no z at
    the last step. T network calls. Returns the samples, and a dict {t: x_t} for the steps in ``keep``."""
    x, labels, guidance, num_classes = initial_noise(denoiser, schedule, n, labels, guidance, seed, target)
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
    """DDIM (eta = 0): visit ``steps`` evenly spaced steps from T-1 down to 0; at each, estimate x_0
    and eps and jump to the next visited step with the same eps: x_t' = sqrt(abar_t') x_0 +
    sqrt(1 - abar_t') eps (abar = 1 after the last). ``clip``: clip the x_0 estimates to
    [-clip, clip]. Returns the samples (and the labels they were drawn for, when conditional)."""
    x, labels, guidance, num_classes = initial_noise(denoiser, schedule, n, labels, guidance, seed, target)
    steps, batch_size = check_steps(steps, schedule), checks.count("batch_size", batch_size)
    clip = None if clip is None else checks.number("clip", clip, 0.0, low_open=True)
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
