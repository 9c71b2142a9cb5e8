"""GAN losses as plain functions of tensors. Discriminators output *logits* (D(x) = sigmoid(logit)), which
lets TensorFlow compute log(sigmoid(.)) stably. Every loss is a plain mean over the batch it is given, so a
trainer logs the same values on any number of replicas (the optimizers' ``scale_loss`` divides the gradients
only). Inputs are cast to float32: a network may compute in float16, its losses are summed in float32.
"""

import reprlib

import tensorflow as tf

from gan_lessons import checks


def _f32(name, value, like=None):
    """``value`` as a float32 tensor, or one sentence: not numeric, empty, or not of the shape ``like``."""
    try:
        x = tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        x = None
    if x is None or not (x.dtype.is_floating or x.dtype.is_integer) or x.shape.num_elements() == 0 or (
            like is not None and not x.shape.is_compatible_with(like)):
        need = "a non-empty numeric tensor" + ("" if like is None else f" of shape {like}")
        got = reprlib.repr(value) if x is None else f"a {x.dtype.name} tensor of shape {tuple(x.shape)}"
        raise checks.BadArgument(f"{name} must be {need}; got {got}.")
    return tf.cast(x, tf.float32)


def _bce(labels, logits):
    """Mean binary cross-entropy of ``logits`` against ``labels``."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_loss(real_logits, fake_logits, real_label=1.0):
    """-[log D(x) + log(1 - D(G(z)))], averaged: D wants real -> 1, fake -> 0. ``real_label`` < 1 (say 0.9)
    is one-sided label smoothing, which keeps D from becoming over-confident on real images."""
    real_logits, fake_logits = _f32("real_logits", real_logits), _f32("fake_logits", fake_logits)
    real_label = checks.number("real_label", real_label, 0.0, 1.0)
    real_loss = _bce(tf.fill(tf.shape(real_logits), real_label), real_logits)
    fake_loss = _bce(tf.zeros_like(fake_logits), fake_logits)
    return real_loss + fake_loss


def generator_loss(fake_logits):
    """Non-saturating generator loss -log D(G(z)) (what G minimises in practice)."""
    fake_logits = _f32("fake_logits", fake_logits)
    return _bce(tf.ones_like(fake_logits), fake_logits)


def minimax_generator_loss(fake_logits):
    """The original minimax loss log(1 - D(G(z))) = -softplus(l), which G would *minimise*; its gradient
    vanishes when D confidently rejects the fakes, which is why ``generator_loss`` is used instead."""
    return -tf.reduce_mean(tf.math.softplus(_f32("fake_logits", fake_logits)))


# ------------------------------------------------------------------ Wasserstein


def critic_loss(real_scores, fake_scores):
    """WGAN critic loss E[f(G(z))] - E[f(x)]: the critic maximises the gap."""
    return tf.reduce_mean(_f32("fake_scores", fake_scores)) - tf.reduce_mean(_f32("real_scores", real_scores))


def wasserstein_generator_loss(fake_scores):
    """WGAN generator loss -E[f(G(z))]."""
    return -tf.reduce_mean(_f32("fake_scores", fake_scores))


def gradient_penalty(critic, real, fake, weight=10.0, epsilon=None):
    """WGAN-GP: weight * E[(||grad_x f(x_hat)||_2 - 1)^2] at x_hat between real and fake.

    x_hat = eps * real + (1 - eps) * fake with eps ~ U[0, 1] drawn per sample
    (pass ``epsilon`` of shape (batch,) to fix it).
    """
    if not callable(critic):
        raise checks.BadArgument(f"critic must be a network (a callable); got {reprlib.repr(critic)}.")
    real = _f32("real", real)
    fake, weight = _f32("fake", fake, like=real.shape), checks.number("weight", weight, 0.0)
    batch = tf.shape(real)[0]
    if epsilon is None:
        epsilon = tf.random.uniform([batch], 0.0, 1.0)
    epsilon = tf.reshape(_f32("epsilon", epsilon, like=real.shape[:1]), [-1] + [1] * (len(real.shape) - 1))
    x_hat = epsilon * real + (1.0 - epsilon) * fake
    # The input gradient on a tape of its own; called inside a training tape, the
    # penalty can then be differentiated with respect to the critic's weights.
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=True)
    grads = tf.reshape(tf.cast(tape.gradient(scores, x_hat), tf.float32), [batch, -1])
    norms = tf.sqrt(tf.reduce_sum(grads**2, axis=1) + 1e-12)
    return weight * tf.reduce_mean((norms - 1.0) ** 2)


# --------------------------------------------------------------------- CycleGAN


def lsgan_discriminator_loss(real_scores, fake_scores):
    """Least-squares GAN: D pushes real scores to 1 and fake to 0 (halved, as in CycleGAN)."""
    real_scores, fake_scores = _f32("real_scores", real_scores), _f32("fake_scores", fake_scores)
    return 0.5 * (tf.reduce_mean((real_scores - 1.0) ** 2) + tf.reduce_mean(fake_scores**2))


def lsgan_generator_loss(fake_scores):
    """Least-squares GAN: G pushes D's score on its fakes to 1."""
    return tf.reduce_mean((_f32("fake_scores", fake_scores) - 1.0) ** 2)


def cycle_loss(real, reconstructed, weight=10.0):
    """weight * mean |x - F(G(x))| (L1): a round trip must come back home."""
    return _l1(real, "reconstructed", reconstructed, weight)


def identity_loss(real, same, weight=5.0):
    """weight * mean |y - G(y)|: G given an image already in its target domain leaves it be."""
    return _l1(real, "same", same, weight)


def _l1(real, name, other, weight):
    real = _f32("real", real)
    return checks.number("weight", weight, 0.0) * tf.reduce_mean(tf.abs(real - _f32(name, other, like=real.shape)))
