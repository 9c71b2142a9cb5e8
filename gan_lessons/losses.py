"""GAN losses as plain functions of tensors.

Discriminators in this package output *logits* (no sigmoid): D(x) = sigmoid(logit).
Working with logits lets TensorFlow compute log(sigmoid(.)) stably.

Every loss here is a plain average over the batch it is given, on one device or on one
replica alike; a trainer running under ``tf.distribute`` scales it itself
(``distribute.gradients``). (Keras's ``BinaryCrossentropy`` object would divide by the
number of replicas on its own, which would also halve the logged values.) Logits and
scores are cast to float32 first, so that under mixed precision a network may compute in
float16 while its losses are summed in float32.
"""

import tensorflow as tf


def _f32(x):
    return tf.cast(x, tf.float32)


def _bce(labels, logits):
    """Mean binary cross-entropy of ``logits`` against ``labels``."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_loss(real_logits, fake_logits, real_label=1.0):
    """-[log D(x) + log(1 - D(G(z)))], averaged: D wants real -> 1, fake -> 0.

    ``real_label`` < 1 gives one-sided label smoothing (for example 0.9), which
    keeps D from becoming over-confident on real images.
    """
    real_logits, fake_logits = _f32(real_logits), _f32(fake_logits)
    real_loss = _bce(tf.fill(tf.shape(real_logits), real_label), real_logits)
    fake_loss = _bce(tf.zeros_like(fake_logits), fake_logits)
    return real_loss + fake_loss


def generator_loss(fake_logits):
    """Non-saturating generator loss -log D(G(z)) (what G minimises in practice)."""
    fake_logits = _f32(fake_logits)
    return _bce(tf.ones_like(fake_logits), fake_logits)


def minimax_generator_loss(fake_logits):
    """The original minimax loss log(1 - D(G(z))), which G would *minimise*.

    log(1 - sigmoid(l)) = -softplus(l). Its gradient vanishes when D confidently
    rejects the fakes, which is why ``generator_loss`` is used instead.
    """
    return -tf.reduce_mean(tf.math.softplus(_f32(fake_logits)))


# ------------------------------------------------------------------ Wasserstein


def critic_loss(real_scores, fake_scores):
    """WGAN critic loss E[f(G(z))] - E[f(x)]: the critic maximises the gap."""
    return tf.reduce_mean(_f32(fake_scores)) - tf.reduce_mean(_f32(real_scores))


def wasserstein_generator_loss(fake_scores):
    """WGAN generator loss -E[f(G(z))]."""
    return -tf.reduce_mean(_f32(fake_scores))


def gradient_penalty(critic, real, fake, weight=10.0, epsilon=None):
    """WGAN-GP: weight * E[(||grad_x f(x_hat)||_2 - 1)^2] at x_hat between real and fake.

    x_hat = eps * real + (1 - eps) * fake with eps ~ U[0, 1] drawn per sample
    (pass ``epsilon`` of shape (batch,) to fix it).
    """
    real = tf.convert_to_tensor(real)
    fake = tf.cast(tf.convert_to_tensor(fake), real.dtype)
    batch = tf.shape(real)[0]
    if epsilon is None:
        epsilon = tf.random.uniform([batch], 0.0, 1.0, dtype=real.dtype)
    epsilon = tf.reshape(tf.cast(epsilon, real.dtype), [-1] + [1] * (len(real.shape) - 1))
    x_hat = epsilon * real + (1.0 - epsilon) * fake
    # The input gradient on a tape of its own; called inside a training tape, the
    # penalty can then be differentiated with respect to the critic's weights.
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=True)
    grads = tf.reshape(_f32(tape.gradient(scores, x_hat)), [batch, -1])
    norms = tf.sqrt(tf.reduce_sum(grads**2, axis=1) + 1e-12)
    return weight * tf.reduce_mean((norms - 1.0) ** 2)


# --------------------------------------------------------------------- CycleGAN


def lsgan_discriminator_loss(real_scores, fake_scores):
    """Least-squares GAN: D pushes real scores to 1 and fake to 0 (halved, as in CycleGAN)."""
    return 0.5 * (tf.reduce_mean((_f32(real_scores) - 1.0) ** 2) + tf.reduce_mean(_f32(fake_scores) ** 2))


def lsgan_generator_loss(fake_scores):
    """Least-squares GAN: G pushes D's score on its fakes to 1."""
    return tf.reduce_mean((_f32(fake_scores) - 1.0) ** 2)


def cycle_loss(real, reconstructed, weight=10.0):
    """weight * mean |x - F(G(x))| (L1): a round trip must come back home."""
    return weight * tf.reduce_mean(tf.abs(_f32(real) - _f32(reconstructed)))


def identity_loss(real, same, weight=5.0):
    """weight * mean |y - G(y)|: G given an image already in its target domain leaves it be."""
    return weight * tf.reduce_mean(tf.abs(_f32(real) - _f32(same)))
