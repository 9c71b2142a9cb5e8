"""Training loops as ``keras.Model`` subclasses with a ``train_step``, driven by ``fit()``.

``GAN`` is the trainer that lesson 01 writes out in front of the reader; later
lessons import it from here. Each trainer:

* takes already-built networks and is marked built, so Keras callbacks such as
  ``BackupAndRestore`` accept it;
* takes its optimizers in ``compile()`` and builds them on their variables at once,
  so that a checkpoint holds (and restores) their state too;
* tracks its losses with ``keras.metrics.Mean`` and returns ``{name: result}``.
"""

import keras
import tensorflow as tf

from gan_lessons import losses


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return value


def _build_optimizer(name, optimizer, variables):
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(f"{name} must be a keras.optimizers.Optimizer; got {optimizer!r}.")
    optimizer.build(variables)
    return optimizer


class GAN(keras.Model):
    """The original GAN game with the non-saturating generator loss.

    Each training step draws fresh noise and takes ``d_steps`` (k) discriminator
    steps on the batch, then one generator step.

    Args:
        generator: noise (batch, latent_dim) -> images.
        discriminator: images -> one logit per image.
        d_steps: k, discriminator updates per generator update (>= 1).
        real_label: target for real images in D's loss; 0.9 is one-sided smoothing.
        seed: seed of the noise drawn during training.
    """

    def __init__(self, generator, discriminator, d_steps=1, real_label=1.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(generator.input_shape[-1])
        self.d_steps = _positive_int("d_steps", d_steps)
        if not 0.5 < real_label <= 1.0:
            raise ValueError(f"real_label must be in (0.5, 1]; got {real_label!r}.")
        self.real_label = float(real_label)
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="D(x)")
        self.d_fake_tracker = keras.metrics.Mean(name="D(G(z))")
        self.built = True

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = _build_optimizer("d_optimizer", d_optimizer, self.discriminator.trainable_variables)
        self.g_optimizer = _build_optimizer("g_optimizer", g_optimizer, self.generator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    def sample_noise(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.noise_seed)

    def train_step(self, data):
        real = data[0] if isinstance(data, tuple) else data
        batch_size = tf.shape(real)[0]

        # 1. k discriminator steps: push D(x) up on real images, D(G(z)) down on fakes.
        for _ in range(self.d_steps):
            fake = self.generator(self.sample_noise(batch_size), training=True)
            with tf.GradientTape() as tape:
                real_logits = self.discriminator(real, training=True)
                fake_logits = self.discriminator(fake, training=True)
                d_loss = losses.discriminator_loss(real_logits, fake_logits, self.real_label)
            grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # 2. One generator step: make D call the fakes real (non-saturating loss).
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(self.sample_noise(batch_size), training=True),
                                             training=True)
            g_loss = losses.generator_loss(fake_logits)
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))

        # 3. Report running means for the progress bar and History.
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        return {m.name: m.result() for m in self.metrics}


class ConditionalGAN(GAN):
    """A GAN whose players both see the class label: G(z, y) and D(x, y).

    With ``matching_aware=True`` the discriminator also sees real images paired
    with a wrong label and must call them fake, so it judges the (image, label)
    match and not only realism.
    """

    def __init__(self, generator, discriminator, num_classes=10, matching_aware=False, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.latent_dim = int(generator.input_shape[0][-1])
        self.num_classes = _positive_int("num_classes", num_classes)
        self.matching_aware = bool(matching_aware)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def sample_labels(self, batch_size):
        return keras.random.randint((batch_size,), 0, self.num_classes, seed=self.noise_seed)

    def train_step(self, data):
        if not isinstance(data, tuple) or len(data) < 2:
            raise ValueError("ConditionalGAN trains on (images, labels) batches; pass labels to make_dataset.")
        real, labels = data[0], tf.cast(tf.reshape(data[1], [-1]), tf.int32)
        batch_size = tf.shape(real)[0]

        # 1. Discriminator: (real, its label) -> real; (G(z, y), y) -> fake;
        #    optionally (real, a wrong label) -> fake.
        for _ in range(self.d_steps):
            fake_labels = self.sample_labels(batch_size)
            fake = self.generator([self.sample_noise(batch_size), fake_labels], training=True)
            with tf.GradientTape() as tape:
                real_logits = self.discriminator([real, labels], training=True)
                fake_logits = self.discriminator([fake, fake_labels], training=True)
                d_loss = losses.discriminator_loss(real_logits, fake_logits, self.real_label)
                if self.matching_aware:
                    shift = keras.random.randint((batch_size,), 1, self.num_classes, seed=self.noise_seed)
                    wrong = (labels + shift) % self.num_classes
                    wrong_logits = self.discriminator([real, wrong], training=True)
                    # Fakes and mismatched pairs share the "fake" half of the loss.
                    d_loss = losses.discriminator_loss(real_logits, fake_logits, self.real_label) * 0.5 + \
                        losses.discriminator_loss(real_logits, wrong_logits, self.real_label) * 0.5
            grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # 2. Generator: make D accept (G(z, y), y) for random labels y.
        gen_labels = self.sample_labels(batch_size)
        with tf.GradientTape() as tape:
            fake = self.generator([self.sample_noise(batch_size), gen_labels], training=True)
            fake_logits = self.discriminator([fake, gen_labels], training=True)
            g_loss = losses.generator_loss(fake_logits)
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        return {m.name: m.result() for m in self.metrics}
