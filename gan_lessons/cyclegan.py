"""Lesson 05: CycleGAN on two digit domains, its networks, its trainer and its report.

Domain A is plain MNIST, a white digit on black. Domain B is the same kind of digit
drawn by ``style``: hollow, outlined, with a drop shadow, on light paper. ``style`` is a
fixed function, so for every A image the lesson knows the right B answer, although the
model never sees a pair. Both domains are (N, 28, 28, 1) float32 in [-1, 1].
"""

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, data, distribute, losses
from gan_lessons.gan import IMAGE_SHAPE

PAPER, INK, SHADOW = 0.92, 0.08, 0.62
"""Brightness (0 black, 1 white) of domain B's paper, outline ink and drop shadow."""
OUTLINE_RADIUS = 2
SHADOW_OFFSET = (2, 2)
SPLIT_SEED = 5
"""Seed of the A/B split: fixed, so the lesson and the command line use the same domains."""


# ---------------------------------------------------------------------- the domains


def _shift(x, dy, dx):
    """Shift images (N, H, W) by (dy, dx) pixels, filling with zeros (no wrap-around)."""
    n, h, w = x.shape
    padded = np.zeros((n, h + 2 * abs(dy), w + 2 * abs(dx)), dtype=x.dtype)
    padded[:, abs(dy):abs(dy) + h, abs(dx):abs(dx) + w] = x
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + h, left:left + w]


def dilate(ink, radius=OUTLINE_RADIUS):
    """Grey-scale dilation: each pixel takes the strongest ink within ``radius`` (a round brush)."""
    out = np.zeros_like(ink)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius + 1:
                np.maximum(out, _shift(ink, dy, dx), out=out)
    return out


def style(images):
    """The A -> B style, image by image: (N, 28, 28, 1) or (28, 28, 1) in [-1, 1] -> the same.

    With ink = (x + 1) / 2: thick = ink dilated by a round brush of radius 2; outline =
    thick - ink (a ring around the stroke, which stays empty: the digit looks hollow);
    shadow = thick shifted 2 pixels down and right, seen only outside the letter. The
    page is PAPER, darkened to SHADOW under the shadow, with the outline in INK on top.
    """
    x = np.asarray(images, dtype=np.float32)
    single = x.ndim == 3
    x = x[None] if single else x
    if x.ndim != 4 or x.shape[-1] != 1:
        raise checks.BadArgument(f"images must have shape (N, H, W, 1) or (H, W, 1); got {np.shape(images)}.")
    ink = np.clip((x[..., 0] + 1.0) / 2.0, 0.0, 1.0)
    thick = dilate(ink)
    outline = np.clip(thick - ink, 0.0, 1.0)
    shadow = _shift(thick, *SHADOW_OFFSET) * (1.0 - thick)
    page = (PAPER - (PAPER - SHADOW) * shadow) * (1.0 - outline) + INK * outline
    out = (2.0 * page - 1.0)[..., None].astype(np.float32)
    return out[0] if single else out


@dataclass
class UnpairedDomains:
    """Images of two domains with no pairing between them, their digit classes, and
    which rows of the loaded digits each domain was made from. ``b_source`` holds the
    plain digits that B was styled from: the true B -> A answer, which training never
    sees. ``len()`` is the size of the smaller domain (the pairs an epoch can draw)."""

    a: np.ndarray
    b: np.ndarray
    a_labels: np.ndarray
    b_labels: np.ndarray
    a_index: np.ndarray = None
    b_index: np.ndarray = None
    b_source: np.ndarray = None

    def __len__(self):
        return min(len(self.a), len(self.b))

    def head(self, n):
        """The first ``n`` images of each domain."""
        return UnpairedDomains(self.a[:n], self.b[:n], self.a_labels[:n], self.b_labels[:n],
                               b_source=None if self.b_source is None else self.b_source[:n])

    def save(self, path):
        """Write a, a_labels, b, b_labels to a compressed .npz (the command line's
        test_domains.npz; ``b_source`` is not part of that file)."""
        np.savez_compressed(path, a=self.a, a_labels=self.a_labels, b=self.b, b_labels=self.b_labels)

    @classmethod
    def load(cls, path):
        with np.load(path) as f:
            return cls(f["a"], f["b"], f["a_labels"], f["b_labels"])


def split_unpaired(images, labels, seed=SPLIT_SEED):
    """Split digits into two disjoint halves: A (kept as they are) and B (styled).

    Within each class half the digits go to each side, so both domains hold every class
    equally often, and no source digit appears in both.
    """
    images, labels = np.asarray(images, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    if len(images) != len(labels) or len(images) < 2:
        raise checks.BadArgument(f"images and labels must match in length, with at least 2 digits; "
                                 f"got {len(images)} images and {len(labels)} labels.")
    rng = np.random.default_rng(seed)
    to_b = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        to_b[idx[len(idx) // 2:]] = True
    a_index, b_index = rng.permutation(np.flatnonzero(~to_b)), rng.permutation(np.flatnonzero(to_b))
    return UnpairedDomains(images[a_index], style(images[b_index]), labels[a_index], labels[b_index],
                           a_index, b_index, b_source=images[b_index])


def load_digit_domains(split="train", limit=None, source="auto", verbose=True):
    """MNIST digits of ``split`` (at most ``limit`` before splitting) as domains A and B."""
    domains = split_unpaired(*data.load_mnist(split, source=source, limit=limit, verbose=verbose))
    if verbose:
        print(f"Domain A: {len(domains.a):,} plain digits; domain B: {len(domains.b):,} styled digits "
              "(different source digits).")
    return domains


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
    -4x4 s2, IN-> (7, 7, 2f) -3x3-> (7, 7, 1). Each score sees an 18x18 window, so it
    judges strokes and texture, not the whole digit; the loss averages all 49."""
    filters = checks.count("filters", filters)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(x))
    h = layers.Conv2D(2 * filters, 4, strides=2, padding="same", use_bias=False)(h)
    h = layers.LeakyReLU(0.2)(instance_norm()(h))
    return keras.Model(x, layers.Conv2D(1, 3, padding="same", name="patch_scores")(h), name=name)


class ImagePool(layers.Layer):
    """A history of generated images for a discriminator (Shrivastava et al., 2017).

    Called on a batch of fresh fakes it returns a batch of the same size. Until the
    pool is full, each fake is stored and returned as it is; after that each fake,
    with probability 1/2, swaps places with a stored image (the stored one is
    returned), and otherwise is returned as it is. Within a batch no larger than the pool,
    the swaps take distinct stored images. ``size=0`` turns the pool off.
    """

    def __init__(self, size=50, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.size = checks.count("size", size, minimum=0)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Replicas write the same values: the first replica's copy is the one kept.
        self.images = self.add_weight(shape=(max(self.size, 1),) + IMAGE_SHAPE, initializer="zeros",
                                      trainable=False, name="images", aggregation="only_first_replica")
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False, name="count",
                                     aggregation="only_first_replica")
        self.built = True

    def call(self, images):
        if self.size == 0:
            return images
        # Under several replicas the pool is one store: every replica runs it on the global
        # batch (the same seed gives the same swaps) and keeps its own rows.
        images = tf.cast(distribute.gather(images), self.images.dtype)
        n, count = tf.shape(images)[0], tf.convert_to_tensor(self.count)
        pos, free = tf.range(n), self.size - count
        fills = pos < free  # 1. while there is room, images fill the empty slots
        # 2. The others swap with a stored image with probability 1/2, visiting the filled
        #    slots in a random order.
        coin = keras.random.uniform((n,), seed=self.seed_generator) < 0.5
        swaps = tf.logical_and(tf.logical_and(tf.logical_not(fills), coin), count > 0)
        keys = keras.random.uniform((self.size,), seed=self.seed_generator)
        keys += 2.0 * tf.cast(tf.range(self.size) >= count, keys.dtype)  # empty slots last
        order = tf.cast(tf.argsort(keys), tf.int32)
        swap_slot = tf.gather(order, tf.math.floormod(pos - tf.maximum(free, 0), tf.maximum(count, 1)))
        out = tf.where(swaps[:, None, None, None], tf.gather(self.images, swap_slot), images)
        # 3. Write the new images into their slots.
        write = tf.logical_or(fills, swaps)
        slots = tf.where(fills, count + pos, swap_slot)
        self.images.assign(tf.tensor_scatter_nd_update(
            self.images, tf.boolean_mask(slots, write)[:, None], tf.boolean_mask(images, write)))
        self.count.assign(tf.minimum(count + n, self.size))
        return distribute.rows(out)


@keras.saving.register_keras_serializable(package="gan_lessons")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """CycleGAN's learning rate: constant for the first ``constant_fraction`` of
    ``total_steps``, then down in a straight line to 0 at ``total_steps`` (the paper:
    2e-4 for 100 epochs, then linearly to 0 over 100 more)."""

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
       fakes drawn through an ``ImagePool`` of ``pool_size``.
    """

    def __init__(self, generator_ab, generator_ba, discriminator_a, discriminator_b, cycle_weight=10.0,
                 identity_weight=5.0, pool_size=50, seed=0):
        super().__init__()
        self.generator_ab, self.generator_ba = generator_ab, generator_ba
        self.discriminator_a, self.discriminator_b = discriminator_a, discriminator_b
        self.cycle_weight = checks.number("cycle_weight", cycle_weight, 0)
        self.identity_weight = checks.number("identity_weight", identity_weight, 0)
        self.pool_a = ImagePool(pool_size, seed=seed, name="pool_a")
        self.pool_b = ImagePool(pool_size, seed=seed + 1, name="pool_b")
        names = ("g_loss", "adversarial_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # all four networks are built; Keras's checkpoint callback needs this

    def compile(self, *, d_optimizer, g_optimizer):
        super().compile(optimizer=None)
        d_optimizer, g_optimizer = distribute.for_policy(d_optimizer), distribute.for_policy(g_optimizer)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        d_optimizer.build(self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables)
        g_optimizer.build(self.generator_ab.trainable_variables + self.generator_ba.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, data):
        real_a, real_b = data
        g_ab, g_ba, d_a, d_b = self.generator_ab, self.generator_ba, self.discriminator_a, self.discriminator_b

        # 1. Generators: fool both discriminators, come back home, leave target-domain images alone.
        with tf.GradientTape() as tape:
            fake_b, fake_a = g_ab(real_a, training=True), g_ba(real_b, training=True)
            adversarial = (losses.lsgan_generator_loss(d_b(fake_b, training=True))
                           + losses.lsgan_generator_loss(d_a(fake_a, training=True)))
            cycle = identity = tf.constant(0.0)
            if self.cycle_weight:
                cycle = (losses.cycle_loss(real_a, g_ba(fake_b, training=True), self.cycle_weight)
                         + losses.cycle_loss(real_b, g_ab(fake_a, training=True), self.cycle_weight))
            if self.identity_weight:
                identity = (losses.identity_loss(real_b, g_ab(real_b, training=True), self.identity_weight)
                            + losses.identity_loss(real_a, g_ba(real_a, training=True), self.identity_weight))
            g_loss = adversarial + cycle + identity
        g_vars = g_ab.trainable_variables + g_ba.trainable_variables
        self.g_optimizer.apply_gradients(zip(distribute.gradients(tape, g_loss, g_vars, self.g_optimizer), g_vars))

        # 2. Discriminators: real -> 1, fakes (about half from the pool of older fakes) -> 0.
        pooled_a, pooled_b = self.pool_a(fake_a), self.pool_b(fake_b)
        with tf.GradientTape() as tape:
            d_a_loss = losses.lsgan_discriminator_loss(d_a(real_a, training=True), d_a(pooled_a, training=True))
            d_b_loss = losses.lsgan_discriminator_loss(d_b(real_b, training=True), d_b(pooled_b, training=True))
            d_loss = d_a_loss + d_b_loss
        d_vars = d_a.trainable_variables + d_b.trainable_variables
        self.d_optimizer.apply_gradients(zip(distribute.gradients(tape, d_loss, d_vars, self.d_optimizer), d_vars))

        values = (g_loss, adversarial, cycle, identity, d_a_loss, d_b_loss)
        for tracker, value in zip(self.trackers.values(), values):
            tracker.update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


# ------------------------------------------------------------------------ the report


def translation_report(generator_ab, generator_ba, domains, classify=None):
    """Measure two digit translators on held-out domains with labels. Returns floats:

    class_kept_b_to_a, class_kept_a_to_b_to_a: share of translations to A that the
        classifier reads as the source digit's class (at best ``classifier_accuracy_a``,
        the classifier's accuracy on the plain A digits);
    cycle_error_a, cycle_error_b: mean |x - F(G(x))| per pixel (0 is perfect, 2 the worst);
    style_error: mean |G_ab(a) - style(a)|, the distance to the true B answer the model
        never saw; for scale, ``style_error_copy`` (returning A unchanged) and
        ``style_error_mean_b`` (drawing the average B image);
    truth_error_b_to_a (when ``domains.b_source`` is known): mean |G_ba(b) - source(b)|,
        the distance to the plain digit that b was styled from; for scale,
        ``truth_error_b_to_a_copy`` (returning B unchanged) and ``truth_error_b_to_a_mean_a``
        (drawing the average A image).
    ``classify`` maps digits to classes (default: the course classifier).
    """
    if classify is None:
        from gan_lessons.metrics import classify
    from gan_lessons.metrics import generate

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
