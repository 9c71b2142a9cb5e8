"""Lesson 06: Pix2Pix (Isola, Zhu, Zhou and Efros, 2017), translation learned from pairs.

A conditional GAN whose condition is a whole image: the generator, a U-Net, turns an
input image into an output image; the discriminator, a PatchGAN, sees the input and an
output together and says, patch by patch, whether the output is the real partner of that
input. The generator's loss adds lambda * L1 to the true partner to the adversarial loss.

The paired digit tasks (``sketch`` and ``complete``) are made in ``digit_tasks``.
"""

import numpy as np
import keras
import tensorflow as tf
from keras import layers

from gan_lessons import checks, losses
from gan_lessons.digit_tasks import Pairs
from gan_lessons.gan import GAN, IMAGE_SHAPE


# ---------------------------------------------------------------------- the networks


def unet_generator(filters=32, skips=True, dropout=0.5, name="unet"):
    """U-Net, image -> image of the same shape, both in [-1, 1]:

    (28, 28, 1) -s2-> e1 (14, 14, f) -s2-> e2 (7, 7, 2f) -> bottleneck 2 x [3x3 conv] (7, 7, 4f)
    -> [concat e2] -up-> (14, 14, 2f) -> [concat e1] -up-> (28, 28, f) -> [concat input] -> tanh.
    With ``skips`` the decoder gets each encoder level's features (the layout of the input);
    without, everything passes the 7x7 bottleneck. Dropout after the first up-sampling is
    the only randomness.
    """
    filters = checks.count("filters", filters)
    skips = checks.choice("skips", skips, (True, False))
    dropout = checks.number("dropout", dropout, 0, 1, high_open=True)

    def down(h, units, norm=True):
        h = layers.Conv2D(units, 4, strides=2, padding="same", use_bias=not norm)(h)
        return layers.LeakyReLU(0.2)(layers.BatchNormalization()(h) if norm else h)

    def up(h, units):
        h = layers.BatchNormalization()(layers.Conv2DTranspose(units, 4, strides=2, padding="same",
                                                               use_bias=False)(h))
        return layers.ReLU()(h)

    def join(h, skip):
        return layers.Concatenate()([h, skip]) if skips else h

    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    e1 = down(x, filters, norm=False)
    e2 = down(e1, 2 * filters)
    b = e2
    for _ in range(2):
        b = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(4 * filters, 3, padding="same",
                                                                    use_bias=False)(b)))
    h = up(join(b, e2), 2 * filters)
    h = layers.Dropout(dropout)(h) if dropout > 0 else h
    h = up(join(h, e1), filters)
    y = layers.Conv2D(1, 3, padding="same", activation="tanh", name="image_out")(join(h, x))
    return keras.Model(x, y, name=name)


def conditional_patchgan(filters=32, name="conditional_patchgan"):
    """PatchGAN that sees (input, output) concatenated as two channels: 28 -4x4 s2-> 14
    -4x4 s2, BN-> 7 -3x3, BN-> 7 -3x3-> 7x7 logits, one per overlapping patch. It normalises
    with BatchNorm, as the paper does, not with lesson 05's instance norm. Each logit sees a
    26x26 window of the pair (clipped at the border: 15x15 at a corner); the 3x3 layer before
    the logits is what lesson 05's PatchGAN lacks, whose windows are 18x18."""
    filters = checks.count("filters", filters)
    condition = keras.Input(shape=IMAGE_SHAPE, name="condition")
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = layers.Concatenate()([condition, image])
    h = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(h))
    h = layers.Conv2D(2 * filters, 4, strides=2, padding="same", use_bias=False)(h)
    h = layers.LeakyReLU(0.2)(layers.BatchNormalization()(h))
    h = layers.Conv2D(4 * filters, 3, padding="same", use_bias=False)(h)
    h = layers.LeakyReLU(0.2)(layers.BatchNormalization()(h))
    return keras.Model([condition, image], layers.Conv2D(1, 3, padding="same")(h), name=name)


# ------------------------------------------------------------------------ the trainer


class Pix2Pix(GAN):
    """Pix2Pix: D learns real pairs (x, y) -> 1 and fake pairs (x, G(x)) -> 0; G minimises
    ``gan_weight`` * (non-saturating GAN loss) + ``l1_weight`` * mean |y - G(x)|.
    ``gan_weight=0`` is the L1-only model (D is not trained), ``l1_weight=0`` the GAN-only
    one. Data: batches of (inputs, targets).

    Lesson 01's GAN gives it the two players and their ``compile``; its randomness is the
    U-Net's dropout, so the GAN's noise and trackers go unused.
    """

    def __init__(self, generator, discriminator, l1_weight=100.0, gan_weight=1.0):
        if len(discriminator.inputs) != 2:  # D reads a pair, as conditional_patchgan does
            raise checks.BadArgument(f"the discriminator must take two inputs, (input, output); "
                                     f"{discriminator.name!r} takes {len(discriminator.inputs)}.")
        checks.fits(generator, discriminator, discriminator_input=1)  # D judges G's output beside its input
        super().__init__(generator, discriminator)
        self.l1_weight = checks.number("l1_weight", l1_weight, 0)
        self.gan_weight = checks.number("gan_weight", gan_weight, 0)
        if self.l1_weight == self.gan_weight == 0:
            raise checks.BadArgument("l1_weight and gan_weight are both 0, which leaves the generator nothing "
                                     "to learn; make at least one positive.")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("g_loss", "l1", "g_gan", "d_loss")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, batch):
        inputs, targets = batch
        g, d = self.generator, self.discriminator

        # 1. Generator: fool D on (input, G(input)) and stay close to the true target.
        #    (L1 alone, gan_weight 0, never calls D.)
        with tf.GradientTape() as tape:
            fake = g(inputs, training=True)
            g_gan = losses.generator_loss(d([inputs, fake], training=True)) if self.gan_weight > 0 else 0.0
            l1 = tf.reduce_mean(tf.abs(targets - tf.cast(fake, targets.dtype)))  # fake is float16 in mixed precision
            g_loss = self.gan_weight * g_gan + self.l1_weight * l1
            scaled = self.g_optimizer.scale_loss(g_loss)  # g_loss itself, unless mixed precision (lesson 01)
        grads = tape.gradient(scaled, g.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, g.trainable_variables))

        # 2. Discriminator: the real pair -> 1, the fake pair -> 0 (skipped for L1 alone).
        d_loss = tf.constant(0.0)
        if self.gan_weight > 0:
            with tf.GradientTape() as tape:
                d_loss = 0.5 * losses.discriminator_loss(d([inputs, targets], training=True),
                                                         d([inputs, fake], training=True))
                scaled = self.d_optimizer.scale_loss(d_loss)
            grads = tape.gradient(scaled, d.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, d.trainable_variables))

        for tracker, value in zip(self.trackers.values(), (g_loss, l1, g_gan, d_loss)):
            tracker.update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


# ------------------------------------------------------------------------ the report


def sharpness(images):
    """Mean Sobel gradient magnitude per pixel of images (N, H, W, C) in [-1, 1]: blur lowers it."""
    gradients = tf.image.sobel_edges(tf.constant(checks.array("images", images, "(N, H, W, C)")))
    return float(tf.reduce_mean(tf.sqrt(tf.reduce_sum(gradients ** 2, axis=-1) + 1e-12)))


def translation_report(generator, inputs, targets, labels):
    """Measure a translator on held-out pairs. Returns floats: ``l1_error`` (mean
    |G(x) - y| per pixel, 0 perfect, 2 the worst), ``class_kept`` (share of outputs the
    course classifier reads as the true class), ``fid`` of the outputs against the true
    digits (course classifier's features), ``sharpness`` of the outputs and of the truth."""
    from gan_lessons import metrics

    pairs = Pairs(inputs, targets, labels)
    outputs = metrics.generate(generator, pairs.inputs)
    return {"l1_error": float(np.mean(np.abs(outputs - pairs.targets))),
            "class_kept": float(np.mean(metrics.classify(outputs) == pairs.labels)),
            "fid": metrics.fid(metrics.features(outputs), metrics.features(pairs.targets)),
            "sharpness": sharpness(outputs), "sharpness_truth": sharpness(pairs.targets)}
