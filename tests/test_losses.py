"""The GAN losses of lessons 01 and 05 as functions of logits and scores."""

import math

import numpy as np
import pytest
import tensorflow as tf

from gan_lessons import losses


def test_an_undecided_discriminator_scores_log_4():
    zeros = tf.zeros((64, 1))  # logit 0 <=> D = 1/2 everywhere: V(D, G) = -log 4
    assert float(losses.discriminator_loss(zeros, zeros)) == pytest.approx(math.log(4), abs=1e-6)


@pytest.mark.parametrize("p_real, p_fake", [(3, 1), (1, 1), (1, 4)])
def test_the_discriminator_loss_is_lowest_at_d_star(p_real, p_fake):
    """Two points A and B; real data put p_real copies of A and p_fake of B in a batch of 4,
    fakes the other way round. Minimising the loss over D's two logits gives
    D*(x) = p_data(x) / (p_data(x) + p_g(x)) at both points."""
    real_points = [0] * p_real + [1] * p_fake
    fake_points = [0] * p_fake + [1] * p_real

    def loss_and_gradient(values):
        logits = tf.Variable(np.asarray(values, "float32"))
        with tf.GradientTape() as tape:
            loss = losses.discriminator_loss(tf.gather(logits, real_points)[:, None],
                                             tf.gather(logits, fake_points)[:, None])
        return float(loss), tf.convert_to_tensor(tape.gradient(loss, logits)).numpy()

    d_star = np.array([p_real, p_fake]) / (p_real + p_fake)
    best, gradient = loss_and_gradient(np.log(d_star / (1 - d_star)))  # the logits of D*
    assert np.abs(gradient).max() < 1e-6  # a stationary point of a convex loss: the minimum
    for shift in ([0.3, 0.0], [0.0, -0.3], [-0.2, 0.2]):
        assert loss_and_gradient(np.log(d_star / (1 - d_star)) + shift)[0] > best


def _value_and_grad(loss_fn, logits):
    x = tf.constant(np.asarray(logits, "float32")[:, None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_fn(x)
    return float(loss), tape.gradient(loss, x).numpy()[:, 0]


def test_the_generator_losses_are_their_formulas():
    """-log D(G(z)) and log(1 - D(G(z))) at D = sigmoid(l), averaged over the batch, with their
    gradients d/dl = -(1 - D) / n and -D / n."""
    logits = np.array([-8.0, -2.0, 0.0, 3.0])
    d = 1 / (1 + np.exp(-logits))
    ns, ns_grad = _value_and_grad(losses.generator_loss, logits)
    mm, mm_grad = _value_and_grad(losses.minimax_generator_loss, logits)
    assert ns == pytest.approx(np.mean(-np.log(d)), rel=1e-6) and mm == pytest.approx(np.mean(np.log(1 - d)), rel=1e-6)
    np.testing.assert_allclose(ns_grad, -(1 - d) / 4, rtol=1e-5)
    np.testing.assert_allclose(mm_grad, -d / 4, rtol=1e-5)


def test_non_saturating_gradient_is_strong_when_d_rejects_fakes():
    logit = [-8.0]  # D(G(z)) = sigmoid(-8) ~ 3e-4: the discriminator easily spots the fake
    ns = _value_and_grad(losses.generator_loss, logit)[1][0]
    mm = _value_and_grad(losses.minimax_generator_loss, logit)[1][0]
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
    # With target 0.9 the lowest loss is at D(x) = 0.9, not at D(x) -> 1.
    assert float(losses.discriminator_loss(logits, -logits, real_label=0.9)) > 0.5
    best = math.log(0.9 / 0.1)
    smoothed = [float(losses.discriminator_loss(tf.fill((4, 1), best + d), tf.fill((4, 1), -30.0), real_label=0.9))
                for d in (-0.1, 0.0, 0.1)]
    assert smoothed[1] < smoothed[0] and smoothed[1] < smoothed[2]


def test_least_squares_and_cycle_losses():
    ones, zeros = tf.ones((3, 7, 7, 1)), tf.zeros((3, 7, 7, 1))
    assert float(losses.lsgan_discriminator_loss(ones, zeros)) == 0.0
    assert float(losses.lsgan_discriminator_loss(zeros, ones)) == 1.0  # 0.5 * (1 + 1)
    assert float(losses.lsgan_generator_loss(ones)) == 0.0 and float(losses.lsgan_generator_loss(zeros)) == 1.0
    a = np.zeros((2, 28, 28, 1), "float32")
    assert float(losses.cycle_loss(a, a + 0.5, weight=10.0)) == pytest.approx(5.0)
    assert float(losses.identity_loss(a, a - 0.2, weight=2.0)) == pytest.approx(0.4)
    assert float(losses.identity_loss(a, a - 0.2)) == pytest.approx(1.0)  # weight 5 by default
    assert float(losses.cycle_loss(a, a + 0.5)) == pytest.approx(5.0)  # weight 10 by default


def test_the_wasserstein_losses_are_their_formulas():
    real, fake = tf.constant([[2.0], [4.0]]), tf.constant([[-1.0], [1.0], [3.0]])
    assert float(losses.critic_loss(real, fake)) == pytest.approx(1.0 - 3.0)  # E f(G(z)) - E f(x)
    assert float(losses.wasserstein_generator_loss(fake)) == pytest.approx(-1.0)  # -E f(G(z))


@pytest.mark.parametrize("loss, arguments", [
    (losses.discriminator_loss, 2), (losses.generator_loss, 1), (losses.minimax_generator_loss, 1),
    (losses.critic_loss, 2), (losses.wasserstein_generator_loss, 1), (losses.lsgan_discriminator_loss, 2),
    (losses.lsgan_generator_loss, 1), (losses.cycle_loss, 2), (losses.identity_loss, 2),
])
def test_losses_are_summed_in_float32_under_mixed_precision(loss, arguments):
    """A float16 network's outputs give a float32 loss, the one float32 outputs would give."""
    values = np.random.default_rng(0).normal(0, 4, (arguments, 64, 1)).astype("float16")
    half = loss(*[tf.constant(v) for v in values])
    assert half.dtype == tf.float32
    assert float(half) == pytest.approx(float(loss(*[tf.constant(v.astype("float32")) for v in values])), rel=1e-6)
