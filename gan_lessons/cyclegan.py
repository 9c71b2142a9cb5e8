"""Lesson 05: CycleGAN, its networks, its image pool, its trainer and its report. The digit domains it
translates between, plain (A) and styled (B), are made in ``digit_tasks``.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, losses
from gan_lessons.digit_tasks import UnpairedDomains, style
from gan_lessons.gan import IMAGE_SHAPE


# ---------------------------------------------------------------------- the networks


def instance_norm():
    """Instance normalisation: GroupNormalization with one group per channel."""
    return layers.GroupNormalization(groups=-1, epsilon=1e-5)


def resnet_generator(filters=32, residual_blocks=3, name="generator"):
    """CycleGAN's ResNet generator, image -> image of the same shape, both in [-1, 1].

    (28, 28, 1) -7x7-> (28, 28, f) -s2-> (14, 14, 2f) -s2-> (7, 7, 4f)
    -> ``residual_blocks`` x [3x3 conv, IN, ReLU, 3x3 conv, IN, + input]
    -> transposed s2 -> (14, 14, 2f) -> transposed s2 -> (28, 28, f) -7x7, tanh-> (28, 28, 1).
    The residual blocks change the style while their skips carry the content.
    """
    filters = checks.count("filters", filters)
    residual_blocks = checks.count("residual_blocks", residual_blocks, minimum=0)

    def conv_block(h, units, kernel, strides=1, transpose=False):
        conv = layers.Conv2DTranspose if transpose else layers.Conv2D
        return layers.ReLU()(instance_norm()(conv(units, kernel, strides=strides, padding="same",
                                                  use_bias=False)(h)))

    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = conv_block(x, filters, 7)
    h = conv_block(h, 2 * filters, 3, strides=2)
    h = conv_block(h, 4 * filters, 3, strides=2)
    for _ in range(residual_blocks):
        r = conv_block(h, 4 * filters, 3)
        r = instance_norm()(layers.Conv2D(4 * filters, 3, padding="same", use_bias=False)(r))
        h = layers.Add()([h, r])
    h = conv_block(h, 2 * filters, 3, strides=2, transpose=True)
    h = conv_block(h, filters, 3, strides=2, transpose=True)
    return keras.Model(x, layers.Conv2D(1, 7, padding="same", activation="tanh", name="translated")(h), name=name)


def patchgan_discriminator(filters=32, name="patch_discriminator"):
    """A grid of scores, each judging one patch: (28, 28, 1) -4x4 s2-> (14, 14, f)
    -4x4 s2, IN-> (7, 7, 2f) -3x3-> (7, 7, 1). Through the convolutions each score sees an 18x18
    window, so it judges strokes and texture more than the whole digit; instance norm's per-image
    statistics let every pixel weigh in a little too. The loss averages all 49."""
    filters = checks.count("filters", filters)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(x))
    h = layers.Conv2D(2 * filters, 4, strides=2, padding="same", use_bias=False)(h)
    h = layers.LeakyReLU(0.2)(instance_norm()(h))
    return keras.Model(x, layers.Conv2D(1, 3, padding="same", name="patch_scores")(h), name=name)


class ImagePool(layers.Layer):
    """A history of generated images for a discriminator (Shrivastava et al., 2017). Called on fresh fakes
    it returns as many images: until the pool is full each fake is stored and returned; then each fake, with
    probability 1/2, swaps places with a stored image (distinct ones within a batch no larger than the pool).
    ``size=0`` turns it off. ``seed``: an integer, or a ``keras.random.SeedGenerator`` (a trainer's own).
    Under ``tf.distribute`` each replica mixes its own fakes, and every replica keeps the first one's store."""

    def __init__(self, size=50, seed=0, image_shape=IMAGE_SHAPE, **kwargs):
        super().__init__(**kwargs)
        self.size = checks.count("size", size, minimum=0)
        if not isinstance(seed, keras.random.SeedGenerator):
            seed = keras.random.SeedGenerator(checks.seed("seed", seed))
        self.seed_generator = seed
        shape = (max(self.size, 1),) + checks.counts("image_shape", image_shape)
        self.images = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="images",
                                      aggregation="only_first_replica")
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False, name="count",
                                     aggregation="only_first_replica")
        self.built = True

    def call(self, images):
        if self.size == 0:
            return images
        images = tf.cast(images, self.images.dtype)
        n, count = tf.shape(images)[0], tf.convert_to_tensor(self.count)
        pos, free = tf.range(n), self.size - count
        fills = pos < free  # 1. while there is room, images fill the empty slots
        # 2. The others swap, with probability 1/2, with the filled slots in a random order.
        coin = keras.random.uniform((n,), seed=self.seed_generator) < 0.5
        swaps = tf.logical_and(tf.logical_and(tf.logical_not(fills), coin), count > 0)
        keys = keras.random.uniform((self.size,), seed=self.seed_generator)
        keys += 2.0 * tf.cast(tf.range(self.size) >= count, keys.dtype)  # empty slots last
        order = tf.cast(tf.argsort(keys), tf.int32)
        swap_slot = tf.gather(order, tf.math.floormod(pos - tf.maximum(free, 0), tf.maximum(count, 1)))
        out = tf.where(swaps[:, None, None, None], tf.gather(self.images, swap_slot), images)
        # 3. Write the new images into their slots; the others into a spare row, dropped (fixed shapes for XLA).
        slots = tf.where(fills, count + pos, tf.where(swaps, swap_slot, self.size))
        with_spare = tf.concat([self.images, tf.zeros_like(self.images[:1])], axis=0)
        self.images.assign(tf.tensor_scatter_nd_update(with_spare, slots[:, None], images)[:self.size])
        self.count.assign(tf.minimum(count + n, self.size))
        return out


@keras.saving.register_keras_serializable(package="gan_lessons")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """CycleGAN's learning rate: constant for the first ``constant_fraction`` of ``total_steps``, then down
    in a straight line to 0 (the paper: 2e-4 for 100 epochs, then linearly to 0 over 100 more)."""

    def __init__(self, initial_learning_rate, total_steps, constant_fraction=0.5):
        self.initial_learning_rate = checks.number("initial_learning_rate", initial_learning_rate, 0, low_open=True)
        self.total_steps = checks.count("total_steps", total_steps)
        self.constant_fraction = checks.number("constant_fraction", constant_fraction, 0, 1, high_open=True)

    def __call__(self, step):
        falling_steps = max(self.total_steps * (1.0 - self.constant_fraction), 1.0)
        left = (self.total_steps - tf.cast(step, tf.float32)) / falling_steps
        return self.initial_learning_rate * tf.clip_by_value(left, 0.0, 1.0)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "constant_fraction": self.constant_fraction}


# ----------------------------------------------------------------------- the trainer


class CycleGAN(keras.Model):
    """Unpaired translation (Zhu et al., 2017): G_ab: A -> B, G_ba: B -> A, and a
    PatchGAN discriminator per domain. One step on an unpaired batch (a, b):

    1. Generators (one optimizer): least-squares GAN loss (D_b(G_ab(a)) - 1)^2 +
       (D_a(G_ba(b)) - 1)^2, plus ``cycle_weight`` * (|a - G_ba(G_ab(a))| + |b - G_ab(G_ba(b))|),
       plus ``identity_weight`` * (|b - G_ab(b)| + |a - G_ba(a)|).
    2. Discriminators (one optimizer): 0.5 * [(D(real) - 1)^2 + D(fake)^2] each, the
       fakes drawn through an ``ImagePool`` of ``pool_size`` per domain.

    Its own ``compile``, not lesson 01's: each optimizer trains two networks.
    """

    def __init__(self, generator_ab, generator_ba, discriminator_a, discriminator_b, cycle_weight=10.0,
                 identity_weight=5.0, pool_size=50, seed=0):
        super().__init__()
        checks.fits(generator_ab, discriminator_b)  # A -> B makes what D_b judges
        checks.fits(generator_ba, discriminator_a)  # B -> A makes what D_a judges
        self.generator_ab, self.generator_ba = generator_ab, generator_ba
        self.discriminator_a, self.discriminator_b = discriminator_a, discriminator_b
        self.cycle_weight = checks.number("cycle_weight", cycle_weight, 0)
        self.identity_weight = checks.number("identity_weight", identity_weight, 0)
        self.seed_generator = keras.random.SeedGenerator(checks.seed("seed", seed))  # the pools' coin flips
        self.pool_a = ImagePool(pool_size, self.seed_generator, generator_ba.outputs[0].shape[1:], name="pool_a")
        self.pool_b = ImagePool(pool_size, self.seed_generator, generator_ab.outputs[0].shape[1:], name="pool_b")
        names = ("g_loss", "adversarial_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # all four networks are built; Keras's checkpoint callback needs this

    def compile(self, d_optimizer, g_optimizer):
        super().compile(optimizer=None)  # one optimizer for both generators, one for both discriminators
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        d_optimizer.build(self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables)
        g_optimizer.build(self.generator_ab.trainable_variables + self.generator_ba.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, data):
        real_a, real_b = data  # unpaired: row i of real_a has nothing to do with row i of real_b
        g_ab, g_ba, d_a, d_b = self.generator_ab, self.generator_ba, self.discriminator_a, self.discriminator_b

        # 1. Both generators together: fool the discriminators, come home, leave alone what is already there.
        with tf.GradientTape() as tape:
            fake_b = g_ab(real_a, training=True)          # horse -> zebra
            fake_a = g_ba(real_b, training=True)          # zebra -> horse
            adversarial = (losses.lsgan_generator_loss(d_b(fake_b, training=True))
                           + losses.lsgan_generator_loss(d_a(fake_a, training=True)))
            cycle = identity = tf.constant(0.0)
            if self.cycle_weight:                         # horse -> zebra -> horse must be the same horse
                cycle = (losses.cycle_loss(real_a, g_ba(fake_b, training=True), self.cycle_weight)
                         + losses.cycle_loss(real_b, g_ab(fake_a, training=True), self.cycle_weight))
            if self.identity_weight:                      # a zebra given to horse -> zebra stays as it is
                identity = (losses.identity_loss(real_b, g_ab(real_b, training=True), self.identity_weight)
                            + losses.identity_loss(real_a, g_ba(real_a, training=True), self.identity_weight))
            g_loss = adversarial + cycle + identity
            scaled = self.g_optimizer.scale_loss(g_loss)  # g_loss itself, unless mixed precision (lesson 01)
        g_vars = g_ab.trainable_variables + g_ba.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, g_vars), g_vars))

        # 2. Both discriminators: real -> 1, fakes -> 0, the fakes drawn half from the pool of older ones.
        pooled_a = self.pool_a(fake_a)
        pooled_b = self.pool_b(fake_b)
        with tf.GradientTape() as tape:
            d_a_loss = losses.lsgan_discriminator_loss(d_a(real_a, training=True), d_a(pooled_a, training=True))
            d_b_loss = losses.lsgan_discriminator_loss(d_b(real_b, training=True), d_b(pooled_b, training=True))
            d_loss = d_a_loss + d_b_loss
            scaled = self.d_optimizer.scale_loss(d_loss)
        d_vars = d_a.trainable_variables + d_b.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, d_vars), d_vars))

        # 3. Running means for the progress line and the history.
        for name, value in (("g_loss", g_loss), ("adversarial_loss", adversarial), ("cycle_loss", cycle),
                            ("identity_loss", identity), ("d_a_loss", d_a_loss), ("d_b_loss", d_b_loss)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


# ------------------------------------------------------------------------ the report


def translation_report(generator_ab, generator_ba, domains, classify=None):
    """Measure two digit translators (callables ``f(images, training=False)``) on labelled held-out domains.
    Returns floats: class_kept_b_to_a, class_kept_a_to_b_to_a: share of translations to A that ``classify``
    (default: the course classifier) reads as the source's class (at best ``classifier_accuracy_a``);
    cycle_error_a, cycle_error_b: mean |x - F(G(x))| per pixel (0 is perfect, 2 the worst); style_error: mean
    |G_ab(a) - style(a)|, the distance to the true B answer; truth_error_b_to_a (with ``domains.b_source``):
    mean |G_ba(b) - source(b)|; for scale, each error of returning the input unchanged (``_copy``) and of
    drawing the other domain's average image (``_mean_b``, ``_mean_a``)."""
    if classify is None:
        from gan_lessons.metrics import classify
    for name, value in (("generator_ab", generator_ab), ("generator_ba", generator_ba), ("classify", classify)):
        if not callable(value):
            raise checks.BadArgument(f"{name} must be callable (a network or a function); got {value!r:.60}.")
    if not isinstance(domains, UnpairedDomains):
        raise checks.BadArgument(f"domains must be UnpairedDomains (digit_tasks.load_digit_domains); got "
                                 f"{type(domains).__name__}.")

    def generate(translator, images, batch_size=250):
        return np.concatenate([np.asarray(translator(images[i:i + batch_size], training=False))
                               for i in range(0, len(images), batch_size)])

    a, b = domains.a, domains.b
    fake_b, fake_a = generate(generator_ab, a), generate(generator_ba, b)
    back_a, back_b = generate(generator_ba, fake_b), generate(generator_ab, fake_a)
    true_b = style(a)
    report = {
        "class_kept_b_to_a": float(np.mean(np.asarray(classify(fake_a)) == domains.b_labels)),
        "class_kept_a_to_b_to_a": float(np.mean(np.asarray(classify(back_a)) == domains.a_labels)),
        "classifier_accuracy_a": float(np.mean(np.asarray(classify(a)) == domains.a_labels)),
        "cycle_error_a": float(np.mean(np.abs(a - back_a))),
        "cycle_error_b": float(np.mean(np.abs(b - back_b))),
        "style_error": float(np.mean(np.abs(fake_b - true_b))),
        "style_error_copy": float(np.mean(np.abs(a - true_b))),
        "style_error_mean_b": float(np.mean(np.abs(b.mean(axis=0, keepdims=True) - true_b))),
    }
    if domains.b_source is not None:
        source = np.asarray(domains.b_source, dtype=np.float32)
        report.update({
            "truth_error_b_to_a": float(np.mean(np.abs(fake_a - source))),
            "truth_error_b_to_a_copy": float(np.mean(np.abs(b - source))),
            "truth_error_b_to_a_mean_a": float(np.mean(np.abs(a.mean(axis=0, keepdims=True) - source))),
        })
    return report
