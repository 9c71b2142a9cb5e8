"""Lesson 03: the conditional GAN, G(z, y) and D(x, y), and its trainer.

Conditional models take ``[noise or image, label]``: labels are integers 0..9 of
shape (batch,) or (batch, 1). ``LabelCheck`` refuses anything else with one sentence.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_lessons import checks, losses
from gan_lessons.gan import GAN, IMAGE_SHAPE, conv_trunk, dcgan_generator


class LabelError(checks.BadArgument):
    """Bad labels given to a conditional model."""

    # Keras appends a report of the layer call to an exception raised in a layer and has no public way to
    # skip it; this marker (its own, for exceptions it has already annotated) keeps the one sentence.
    _keras_call_info_injected = True


@keras.saving.register_keras_serializable(package="gan_lessons")
class LabelCheck(layers.Layer):
    """Checks class labels before they reach an Embedding; returns them as int32 (batch,), then the
    companion input (the noise or the images; second, so that models saved when it returned only
    the labels still load).

    An Embedding on a GPU silently returns zeros for an id outside its table, so the
    model checks its labels itself: whole numbers in 0..num_classes-1, one per row of
    the companion. The label input is declared float32 so that 2.6 reaches this check
    instead of being truncated to 2 on the way in. Eager calls raise ``LabelError``; a
    compiled graph raises TensorFlow's ``InvalidArgumentError`` with the same words. XLA
    (what Keras compiles with on a GPU) drops those asserts but keeps arithmetic, so the
    companion's rows with a bad label also come out NaN, and so do their outputs and the losses.
    """

    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def call(self, inputs):
        companion, labels = inputs
        labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
        rows, given = tf.shape(companion)[0], tf.shape(labels)[0]
        allowed = f"labels must be whole numbers in 0..{self.num_classes - 1}, one per row of the noise or images"
        if tf.executing_eagerly():
            values = labels.numpy()
            bad = values[(values != np.round(values)) | (values < 0) | (values >= self.num_classes)]
            if bad.size or int(rows) != int(given):
                shown = "[" + ", ".join(f"{v:.6g}" for v in np.unique(bad)) + "]"
                got = shown if bad.size else f"{int(given)} labels for {int(rows)} rows"
                raise LabelError(f"{allowed}; got {got}.")
        else:
            with tf.control_dependencies([
                tf.debugging.assert_equal(rows, given, message=allowed),
                tf.debugging.assert_equal(labels, tf.round(labels), message=allowed),
                tf.debugging.assert_non_negative(labels, message=allowed),
                tf.debugging.assert_less(labels, float(self.num_classes), message=allowed),
            ]):
                labels = tf.identity(labels)
            good = (labels == tf.round(labels)) & (labels >= 0) & (labels < self.num_classes)
            nan = tf.reshape(tf.where(good, 0.0, float("nan")), [-1] + [1] * (len(companion.shape) - 1))
            companion = companion + tf.cast(nan, companion.dtype)
        return tf.cast(labels, tf.int32), companion

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],), input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def conditional_generator(latent_dim=64, num_classes=10, embed_dim=32, filters=64, name="conditional_generator"):
    """G(z, y): the label's embedding joins the noise, and lesson 02's generator draws from there.

    [(latent_dim,), label] -> concat (latent_dim + embed_dim,) -> ``gan.dcgan_generator``
    (dense to 7x7, 3x3 conv, two 5x5 transposed convolutions, 3x3 conv + tanh) -> (28, 28, 1).
    """
    latent_dim = checks.count("latent_dim", latent_dim)
    num_classes = checks.count("num_classes", num_classes)
    embed_dim = checks.count("embed_dim", embed_dim)
    filters = checks.count("filters", filters)
    z = keras.Input(shape=(latent_dim,), name="noise")
    y = keras.Input(shape=(1,), name="label")
    label, noise = LabelCheck(num_classes, name="label_check")([z, y])
    h = layers.Concatenate(name="noise_and_label")([noise, layers.Embedding(num_classes, embed_dim,
                                                                            name="label_embedding")(label)])
    image = dcgan_generator(latent_dim + embed_dim, filters, name="dcgan_generator")(h)
    return keras.Model([z, y], image, name=name)


def conditional_discriminator(num_classes=10, filters=64, refine=True, name="conditional_discriminator"):
    """D(x, y): the label's embedding is drawn as a second 28x28 channel beside the image,
    and lesson 02's discriminator trunk (with its third convolution when ``refine``, the
    default, as in lesson 02's training) judges both.

    D must see the label: otherwise a perfect "3" would pass as real even when G was
    asked for a "7", and G would have no reason to obey the label.
    """
    num_classes = checks.count("num_classes", num_classes)
    filters = checks.count("filters", filters)
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    y = keras.Input(shape=(1,), name="label")
    label, image = LabelCheck(num_classes, name="label_check")([x, y])
    plane = layers.Reshape(IMAGE_SHAPE, name="label_plane")(
        layers.Embedding(num_classes, 28 * 28, name="label_embedding")(label))
    h = conv_trunk(layers.Concatenate(name="image_and_label")([image, plane]), filters, batch_norm=True, refine=refine)
    return keras.Model([x, y], layers.Dense(1, name="logit")(h), name=name)


class ConditionalGAN(GAN):
    """A GAN whose players both see the class label: G(z, y) and D(x, y).

    Trains on (images, labels) batches. With ``matching_aware=True`` the discriminator
    also sees real images paired with a wrong label and must call them fake, so it
    judges the (image, label) match and not only realism.
    """

    def __init__(self, generator, discriminator, num_classes=10, matching_aware=False, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.num_classes = checks.count("num_classes", num_classes)
        self.matching_aware = bool(matching_aware)

    def random_labels(self, batch_size, low=0):
        return keras.random.randint((batch_size,), low, self.num_classes, seed=self.seed_generator)

    def train_step(self, data):
        if not isinstance(data, tuple):
            raise checks.BadArgument("a ConditionalGAN trains on (images, labels) batches; make them with "
                                     "data.make_dataset(images, labels, ...).")
        real, labels = data
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        batch_size = tf.shape(real)[0]

        # 1. Discriminator: (real, its label) -> real; (G(z, y), y) -> fake;
        #    matching-aware: also (real, a wrong label) -> fake.
        for _ in range(self.d_steps):
            fake_labels = self.random_labels(batch_size)
            fake = self.generator([self.noise(batch_size), fake_labels], training=True)
            with tf.GradientTape() as tape:
                real_logits = self.discriminator([real, labels], training=True)
                fake_logits = self.discriminator([fake, fake_labels], training=True)
                d_loss = losses.discriminator_loss(real_logits, fake_logits, self.real_label)
                if self.matching_aware:
                    # The true label shifted by 1..num_classes-1: never right by chance.
                    wrong = (labels + self.random_labels(batch_size, low=1)) % self.num_classes
                    wrong_logits = self.discriminator([real, wrong], training=True)
                    # Fakes and mismatched real pairs share the "fake" half of the loss equally.
                    d_loss = 0.5 * (d_loss + losses.discriminator_loss(real_logits, wrong_logits, self.real_label))
                scaled = self.d_optimizer.scale_loss(d_loss)
            grads = tape.gradient(scaled, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # 2. Generator: make D accept (G(z, y), y) for random labels y.
        gen_labels = self.random_labels(batch_size)
        with tf.GradientTape() as tape:
            fake = self.generator([self.noise(batch_size), gen_labels], training=True)
            fake_logits = self.discriminator([fake, gen_labels], training=True)
            g_loss = losses.generator_loss(fake_logits)
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))

        # 3. Running means of d_loss, g_loss, D(x) and D(G(z)), in the order of self.metrics.
        means = (d_loss, g_loss, tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits)))
        for tracker, value in zip(self.metrics, means):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}
