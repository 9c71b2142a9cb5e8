import math

import numpy as np
import tensorflow as tf

from gan_lessons import losses


def _normal_pdf(x, mu, sigma):
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def _value_at_optimal_d(mu_g):
    """V(D*, G) by numerical integration for p_data = N(0, 1), p_g = N(mu_g, 1)."""
    x = np.linspace(-12, 12, 200001)
    p, q = _normal_pdf(x, 0, 1), _normal_pdf(x, mu_g, 1)
    d_star = p / (p + q)
    integrand = p * np.log(d_star) + q * np.log(1 - d_star)
    return float(np.sum(integrand) * (x[1] - x[0])), d_star


def test_equilibrium_value_is_minus_log_4():
    v, d_star = _value_at_optimal_d(0.0)
    assert abs(v - (-math.log(4))) < 1e-6
    assert np.allclose(d_star, 0.5)
    # Any other generator gives a larger V(D*, G) = -log 4 + 2 JSD.
    assert _value_at_optimal_d(1.0)[0] > -math.log(4) + 0.1


def test_value_function_with_an_undecided_discriminator():
    zeros = tf.zeros((64, 1))  # logit 0 <=> D = 1/2 everywhere
    assert abs(float(losses.value_function(zeros, zeros)) + math.log(4)) < 1e-6
    assert abs(float(losses.discriminator_loss(zeros, zeros)) - math.log(4)) < 1e-6


def _grad(loss_fn, logit):
    x = tf.constant([[logit]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_fn(x)
    return float(tape.gradient(loss, x)[0, 0])


def test_non_saturating_gradient_is_strong_when_d_rejects_fakes():
    logit = -8.0  # D(G(z)) = sigmoid(-8) ~ 3e-4: the critic easily spots the fake
    ns = _grad(losses.generator_loss, logit)
    mm = _grad(losses.minimax_generator_loss, logit)
    # Both push the logit up (negative gradient), but the minimax one has almost vanished.
    assert ns < 0 and mm < 0
    assert abs(ns) > 0.99
    assert abs(mm) < 1e-3
    assert abs(ns) / abs(mm) > 1000


def test_discriminator_loss_small_when_d_is_right():
    real = tf.fill((8, 1), 10.0)
    fake = tf.fill((8, 1), -10.0)
    assert float(losses.discriminator_loss(real, fake)) < 1e-3
    assert float(losses.discriminator_loss(fake, real)) > 10


def test_label_smoothing_moves_the_target():
    logits = tf.fill((4, 1), 10.0)
    assert float(losses.discriminator_loss(logits, -logits, real_label=0.9)) > 0.5


def _linear_discriminator(w, b=0.3):
    """logit(x) = w . flatten(x) + b: its input gradient is w everywhere."""
    import keras

    w = np.asarray(w, dtype=np.float32).reshape(-1, 1)
    x = keras.Input(shape=(len(w),))
    dense = keras.layers.Dense(1)
    model = keras.Model(x, dense(x))
    dense.set_weights([w, np.array([b], "float32")])
    return model


def test_r1_penalty_of_a_linear_discriminator_is_half_gamma_w_squared():
    w = [3.0, -4.0, 1.0]
    real = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    got = float(losses.r1_penalty(_linear_discriminator(w), real, weight=10.0))
    assert abs(got - 0.5 * 10.0 * 26.0) < 1e-3
    flat = _linear_discriminator([0.0, 0.0, 0.0])
    assert float(losses.r1_penalty(flat, real, weight=10.0)) == 0.0


def test_r1_penalty_reaches_the_discriminator_weights():
    """Inside an outer tape the penalty has a gradient with respect to D's weights."""
    d = _linear_discriminator([1.0, 2.0])
    real = np.ones((4, 2), "float32")
    with tf.GradientTape() as tape:
        penalty = losses.r1_penalty(d, real, weight=2.0)
    kernel_grad = tape.gradient(penalty, d.trainable_variables[0])
    # d/dw of (gamma / 2) |w|^2 is gamma * w.
    assert np.allclose(np.ravel(kernel_grad), [2.0, 4.0], atol=1e-5)
