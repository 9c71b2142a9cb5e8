"""Lesson 04: the Wasserstein GAN, its critic, the toy networks, and the trainer.

A critic f maps a sample to one unbounded score (no sigmoid: it estimates a distance,
not a probability).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, losses
from gan_lessons.gan import GAN, IMAGE_SHAPE, conv_trunk


def critic(filters=64, refine=False, name="critic"):
    """The DCGAN discriminator's shape without BatchNorm, ending in an unbounded score.

    No BatchNorm: it makes each sample's score depend on the rest of its batch, and
    the gradient penalty is a penalty on each sample's own gradient. ``refine`` adds
    the 3x3 convolution at 7x7 of ``gan.dcgan_discriminator(refine=True)``.
    """
    filters = checks.count("filters", filters)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = conv_trunk(x, filters, batch_norm=False, refine=refine)
    return keras.Model(x, layers.Dense(1, name="score")(h), name=name)


def toy_generator(latent_dim=2, hidden_units=(128, 128, 128), name="toy_generator"):
    """Noise (batch, latent_dim) -> 2-D points: ReLU layers and a linear output
    (toy points are not bounded like pixels, so no tanh)."""
    z = keras.Input(shape=(checks.count("latent_dim", latent_dim),), name="noise")
    h = z
    for units in checks.counts("hidden_units", hidden_units):
        h = layers.Dense(units, activation="relu")(h)
    return keras.Model(z, layers.Dense(2, name="point")(h), name=name)


def toy_critic(hidden_units=(128, 128, 128), name="toy_critic"):
    """2-D points -> one unbounded score: a GAN discriminator's logit or a WGAN critic's value."""
    x = keras.Input(shape=(2,), name="point")
    h = x
    for units in checks.counts("hidden_units", hidden_units):
        h = layers.Dense(units, activation="relu")(h)
    return keras.Model(x, layers.Dense(1, name="score")(h), name=name)


def wasserstein_1d(a, b):
    """Exact W1 between two equal-size 1-D samples: mean |sorted(a) - sorted(b)|
    (in 1-D the cheapest transport matches the sorted samples in order). It equals the
    area between the two empirical CDFs, and the gap mean f(a) - mean f(b) of the best
    1-Lipschitz critic f, whose slope is sign(F_b - F_a) (lesson 04, section 2)."""
    a = np.sort(np.ravel(np.asarray(a, dtype=np.float64)))
    b = np.sort(np.ravel(np.asarray(b, dtype=np.float64)))
    if len(a) != len(b) or not len(a):
        raise checks.BadArgument(f"a and b must hold the same number of samples (at least 1); got {len(a)} and {len(b)}.")
    return float(np.mean(np.abs(a - b)))


class WGAN(GAN):
    """Wasserstein GAN: the critic widens E[f(x)] - E[f(G(z))], the generator narrows it.

    Give exactly one way to keep f Lipschitz: ``clip_value=c`` (WGAN: every critic
    weight clipped to [-c, c] after each step) or ``gp_weight=lambda`` (WGAN-GP: the
    penalty lambda * E[(||grad f(x_hat)||_2 - 1)^2] at points between real and fake).

    Each training step takes ``n_critic`` critic steps, each on real samples of its
    own (Algorithm 1 of Gulrajani et al.), then one generator step. So a step's data is
    ``n_critic`` batches stacked: shape (n_critic, m, ...), as made by
    ``data.make_dataset(x, batch_size=m, per_step=n_critic)``; critic step i reads ``real[i]``.

    Logged: ``c_loss`` (with the penalty), ``g_loss``, ``wasserstein`` (the estimate
    E[f(x)] - E[f(G(z))] of the last critic step) and, for WGAN-GP, ``gp``.
    """

    def __init__(self, generator, critic, n_critic=5, clip_value=None, gp_weight=None, seed=0):
        super().__init__(generator, critic, seed=seed)  # lesson 01's networks, noise and compile
        if (clip_value is None) == (gp_weight is None):
            raise checks.BadArgument("Give exactly one of clip_value (WGAN) and gp_weight (WGAN-GP); "
                                     f"got clip_value={clip_value!r}, gp_weight={gp_weight!r}.")
        self.n_critic = checks.count("n_critic", n_critic)
        self.clip_value = None if clip_value is None else checks.number("clip_value", clip_value, 0, low_open=True)
        self.gp_weight = None if gp_weight is None else checks.number("gp_weight", gp_weight, 0, low_open=True)
        names = ["c_loss", "g_loss", "wasserstein"] + (["gp"] if self.gp_weight else [])
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def critic(self):
        return self.discriminator  # lesson 01's discriminator, under its WGAN name

    @property
    def metrics(self):
        return list(self.trackers.values())

    def generator_loss(self, fake_scores):
        return losses.wasserstein_generator_loss(fake_scores)  # -E[f(G(z))]

    def train_step(self, real_batches):
        if real_batches.shape[0] not in (None, self.n_critic):
            raise checks.BadArgument(
                f"a WGAN step takes n_critic={self.n_critic} stacked batches of real samples, shape "
                f"(n_critic, batch, ...); got shape {tuple(real_batches.shape)}. Make the data with "
                f"data.make_dataset(x, batch_size=..., per_step={self.n_critic}).")
        batch_size = tf.shape(real_batches)[1]

        # 1. n_critic critic steps, each on its own real samples: widen E[f(x)] - E[f(G(z))].
        for i in range(self.n_critic):
            real = real_batches[i]
            fake = self.generator(self.noise(batch_size), training=True)
            with tf.GradientTape() as tape:
                c_loss = losses.critic_loss(self.critic(real, training=True), self.critic(fake, training=True))
                total = c_loss
                if self.gp_weight:
                    # A gradient of a gradient: the penalty's own tape sits inside this one.
                    epsilon = keras.random.uniform((batch_size,), seed=self.seed_generator)
                    gp = losses.gradient_penalty(self.critic, real, fake, self.gp_weight, epsilon)
                    total = c_loss + gp
                scaled = self.d_optimizer.scale_loss(total)
            grads = tape.gradient(scaled, self.critic.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.critic.trainable_variables))
            if self.clip_value:
                # 2. Weight clipping keeps f in a compact set of functions (K-Lipschitz for some K).
                for variable in self.critic.trainable_variables:
                    variable.assign(tf.clip_by_value(variable, -self.clip_value, self.clip_value))

        # 3. One generator step, lesson 01's, with the generator loss below: raise the
        #    critic's score of the fakes.
        g_loss, _ = self.generator_step(batch_size)

        # 4. Running means; the Wasserstein estimate is minus the critic loss without the penalty.
        values = {"c_loss": total, "g_loss": g_loss, "wasserstein": -c_loss}
        if self.gp_weight:
            values["gp"] = gp
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
