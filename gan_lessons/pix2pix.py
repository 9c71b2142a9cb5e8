"""Lesson 06: Pix2Pix (Isola, Zhu, Zhou and Efros, 2017), translation learned from pairs.

A conditional GAN whose condition is a whole image: the generator, a U-Net, turns an
input image into an output image; the discriminator, a PatchGAN, sees the input and an
output together and says, patch by patch, whether the output is the real partner of that
input. The generator's loss adds lambda * L1 to the true partner to the adversarial loss.

The paired digit tasks are made offline from MNIST digits: ``sketch`` (the digit's edge
map -> the digit) and ``complete`` (the digit with its lower half hidden -> the digit).
"""

import numpy as np
import keras
import tensorflow as tf
from keras import layers

from gan_lessons import checks, data, distribute, losses

IMAGE_SHAPE = (28, 28, 1)
TASKS = ("sketch", "complete")
EDGE_THRESHOLD = 2.0
"""Sobel gradient magnitude (of ink in [0, 1]) above which a pixel is an edge."""
HIDDEN = 0.0
"""The value of hidden pixels in the ``complete`` task: mid-grey, neither ink nor paper."""


# ------------------------------------------------------------------------ the pairs


def sketch(images):
    """Edge maps of digits in [-1, 1]: white where the Sobel gradient of the ink is
    steeper than ``EDGE_THRESHOLD``, black elsewhere. Thick strokes become outlines."""
    ink = (np.asarray(images, np.float32) + 1) / 2
    gradients = tf.image.sobel_edges(tf.constant(ink))  # (N, 28, 28, 1, 2): d/dy, d/dx
    magnitude = tf.sqrt(tf.reduce_sum(gradients ** 2, axis=-1)).numpy()
    return np.where(magnitude > EDGE_THRESHOLD, 1.0, -1.0).astype(np.float32)


def hide_lower_half(images):
    """Digits with rows 14-27 replaced by ``HIDDEN``: the input of the ``complete`` task."""
    x = np.array(images, np.float32)
    x[:, 14:] = HIDDEN
    return x


def make_pairs(images, task="sketch"):
    """(inputs, targets) for ``task``: the targets are the digits themselves."""
    checks.choice("task", task, TASKS)
    targets = np.asarray(images, np.float32)
    targets = targets[..., None] if targets.ndim == 3 else targets
    return (sketch(targets) if task == "sketch" else hide_lower_half(targets)), targets


class Pairs:
    """Paired images: ``inputs``, ``targets`` (N, 28, 28, 1) in [-1, 1] and the targets'
    digit ``labels``; saved as an .npz file with those three arrays."""

    def __init__(self, inputs, targets, labels):
        self.inputs, self.targets = check_pairs(inputs, targets)
        self.labels = np.asarray(labels, np.int64).reshape(-1)
        if len(self.labels) != len(self.inputs):
            raise checks.BadArgument(f"labels has {len(self.labels)} items but inputs has {len(self.inputs)}.")

    def __len__(self):
        return len(self.inputs)

    def head(self, n):
        return Pairs(self.inputs[:n], self.targets[:n], self.labels[:n])

    def save(self, path):
        np.savez_compressed(path, inputs=self.inputs, targets=self.targets, labels=self.labels)

    @classmethod
    def load(cls, path):
        with np.load(path) as archive:
            missing = [k for k in ("inputs", "targets", "labels") if k not in archive]
            if missing:
                raise checks.BadArgument(f"{path} has no array {', '.join(missing)}; it needs inputs, targets "
                                         "and labels.")
            return cls(archive["inputs"], archive["targets"], archive["labels"])


def load_pairs(split="train", task="sketch", limit=None, source="auto", verbose=True):
    """Paired digits of ``split`` for ``task`` as ``Pairs``."""
    images, labels = data.load_mnist(split, source=source, limit=limit, verbose=verbose)
    return Pairs(*make_pairs(images, task), labels)


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
    """PatchGAN that sees (input, output) stacked as two channels: 28 -s2-> 14 -s2-> 7
    -> 3x3 -> 7x7 logits, one per overlapping patch (each sees about 22x22 pixels)."""
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


class Pix2Pix(keras.Model):
    """Pix2Pix: D learns real pairs (x, y) -> 1 and fake pairs (x, G(x)) -> 0; G minimises
    ``gan_weight`` * (non-saturating GAN loss) + ``l1_weight`` * mean |y - G(x)|.
    ``gan_weight=0`` is the L1-only model (D is not trained), ``l1_weight=0`` the GAN-only
    one. Data: batches of (inputs, targets)."""

    def __init__(self, generator, discriminator, l1_weight=100.0, gan_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.l1_weight = checks.number("l1_weight", l1_weight, 0)
        self.gan_weight = checks.number("gan_weight", gan_weight, 0)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("g_loss", "l1", "g_gan", "d_loss")}
        self.built = True  # both networks are built; Keras's checkpoint callback needs this

    def compile(self, *, d_optimizer, g_optimizer):
        super().compile(optimizer=None)
        d_optimizer, g_optimizer = distribute.for_policy(d_optimizer), distribute.for_policy(g_optimizer)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        # Built now, on their player's weights: checkpoints hold their state, and under a
        # tf.distribute strategy their variables are made outside the replicas' step.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

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
            l1 = tf.reduce_mean(tf.abs(targets - tf.cast(fake, targets.dtype)))
            g_loss = self.gan_weight * g_gan + self.l1_weight * l1
        grads = distribute.gradients(tape, g_loss, g.trainable_variables, self.g_optimizer)
        self.g_optimizer.apply_gradients(zip(grads, g.trainable_variables))

        # 2. Discriminator: the real pair -> 1, the fake pair -> 0 (skipped for L1 alone).
        d_loss = tf.constant(0.0)
        if self.gan_weight > 0:
            with tf.GradientTape() as tape:
                d_loss = 0.5 * losses.discriminator_loss(d([inputs, targets], training=True),
                                                         d([inputs, fake], training=True))
            grads = distribute.gradients(tape, d_loss, d.trainable_variables, self.d_optimizer)
            self.d_optimizer.apply_gradients(zip(grads, d.trainable_variables))

        for tracker, value in zip(self.trackers.values(), (g_loss, l1, g_gan, d_loss)):
            tracker.update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


# ------------------------------------------------------------------------ the report


def sharpness(images):
    """Mean Sobel gradient magnitude per pixel of images in [-1, 1]: blur lowers it."""
    gradients = tf.image.sobel_edges(tf.constant(np.asarray(images, np.float32)))
    return float(tf.reduce_mean(tf.sqrt(tf.reduce_sum(gradients ** 2, axis=-1) + 1e-12)))


def check_pairs(inputs, targets=None):
    """Inputs (and targets) as float32 (N, 28, 28, 1) in [-1, 1], or one sentence."""
    out = []
    for name, x in (("inputs", inputs), ("targets", targets)):
        if x is None:
            continue
        a = np.asarray(x, np.float32)
        a = a[..., None] if a.ndim == 3 else a
        if a.ndim != 4 or a.shape[1:] != IMAGE_SHAPE or not len(a):
            raise checks.BadArgument(f"{name} must have shape (N, 28, 28, 1) with N >= 1; got {np.shape(x)}.")
        if not np.all(np.isfinite(a)) or a.min() < -1.0001 or a.max() > 1.0001:
            raise checks.BadArgument(f"{name} must hold finite values in [-1, 1] (scale images with "
                                     f"x / 127.5 - 1); got values from {np.nanmin(a):.3g} to {np.nanmax(a):.3g}.")
        out.append(a)
    if len(out) == 2 and len(out[0]) != len(out[1]):
        raise checks.BadArgument(f"inputs has {len(out[0])} images but targets has {len(out[1])}; they must match.")
    return out


def translation_report(generator, inputs, targets, labels):
    """Measure a translator on held-out pairs. Returns floats: ``l1_error`` (mean
    |G(x) - y| per pixel, 0 perfect, 2 the worst), ``class_kept`` (share of outputs the
    course classifier reads as the true class), ``fid`` of the outputs against the true
    digits (course classifier's features), ``sharpness`` of the outputs and of the truth."""
    from gan_lessons import metrics

    inputs, targets = check_pairs(inputs, targets)
    outputs = metrics.generate(generator, inputs)
    return {"l1_error": float(np.mean(np.abs(outputs - targets))),
            "class_kept": float(np.mean(metrics.classify(outputs) == np.asarray(labels).reshape(-1))),
            "fid": metrics.fid(metrics.features(outputs), metrics.features(targets)),
            "sharpness": sharpness(outputs), "sharpness_truth": sharpness(targets)}
