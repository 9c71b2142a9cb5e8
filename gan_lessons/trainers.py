"""Training loops as ``keras.Model`` subclasses with a ``train_step``, driven by ``fit()``.

``GAN`` is the trainer that lesson 01 writes out in front of the reader; later
lessons import it from here. Each trainer:

* takes already-built networks and is marked built, so Keras callbacks such as
  ``BackupAndRestore`` accept it;
* takes its optimizers in ``compile()`` and builds them on their variables at once,
  so that a checkpoint holds (and restores) their state too;
* tracks its losses with ``keras.metrics.Mean`` and returns ``{name: result}``;
* keeps one iterator over a ``tf.data`` dataset for the whole of ``fit`` (see
  ``OneIteratorFit``).
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


def _dataset_length(x):
    """The number of batches of a ``tf.data`` dataset of known, finite length; else None."""
    if isinstance(x, tf.data.Dataset):
        length = int(x.cardinality())
        if length > 0:
            return length
    return None


class OneIteratorFit:
    """Mixin for a ``keras.Model``: ``fit`` reads a finite dataset through one iterator.

    ``keras.Model.fit`` makes a new iterator over a ``tf.data`` dataset at the start
    of every epoch. On a 2-core CPU, with a model training in the same process, making
    one often took 3 to 4 seconds (about half the epoch of a DCGAN on 4,000 digits),
    against a few milliseconds without the training. Given a dataset of known length
    n and no ``steps_per_epoch``, this ``fit`` trains on ``dataset.repeat()`` with
    ``steps_per_epoch=n`` instead: the same n batches an epoch, each epoch a new pass
    (a dataset shuffled with ``reshuffle_each_iteration`` is reshuffled for each pass),
    and the iterator is made once. Other inputs go to ``keras.Model.fit`` unchanged.
    """

    def fit(self, x=None, y=None, **kwargs):
        steps = _dataset_length(x)
        if steps is not None and kwargs.get("steps_per_epoch") is None:
            x, kwargs["steps_per_epoch"] = x.repeat(), steps
        return super().fit(x, y, **kwargs)


class _GeneratorAverage:
    """Mixin for trainers that can keep a moving average of their generator's weights."""

    def _keep_average(self, generator, momentum):
        """Set ``generator_average``: a frozen copy of ``generator`` (None when momentum is None)."""
        self.generator_average = None
        self.average_momentum = None
        if momentum is None:
            return
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"average_momentum must be a number in [0, 1); got {momentum!r}.")
        self.average_momentum = float(momentum)
        self.generator_average = keras.models.clone_model(generator)
        self.generator_average.set_weights(generator.get_weights())
        self.generator_average.trainable = False

    def update_average(self):
        """avg <- m * avg + (1 - m) * weight for every weight (BatchNorm statistics included)."""
        if self.generator_average is None:
            return
        m = self.average_momentum
        for avg, weight in zip(self.generator_average.weights, self.generator.weights):
            avg.assign(m * avg + (1.0 - m) * weight)


class GAN(OneIteratorFit, _GeneratorAverage, keras.Model):
    """The original GAN game with the non-saturating generator loss.

    Each training step draws fresh noise and takes ``d_steps`` (k) discriminator
    steps on the batch, then one generator step.

    Args:
        generator: noise (batch, latent_dim) -> images.
        discriminator: images -> one logit per image.
        d_steps: k, discriminator updates per generator update (>= 1).
        real_label: target for real images in D's loss; 0.9 is one-sided smoothing.
        r1_weight: gamma of the R1 penalty gamma / 2 * E||grad D(x)||^2 on real images
            added to D's loss (0 turns it off).
        average_momentum: when given (for example 0.999), keep ``generator_average``, a
            copy of the generator whose every weight (BatchNorm's running statistics
            included) is an exponential moving average of the generator's after each
            step: avg <- m * avg + (1 - m) * weight. Training never uses it.
        seed: seed of the noise drawn during training.
    """

    def __init__(self, generator, discriminator, d_steps=1, real_label=1.0, r1_weight=0.0,
                 average_momentum=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        noise_shape = generator.input_shape
        if isinstance(noise_shape, list):  # a conditional generator takes [noise, label]
            noise_shape = noise_shape[0]
        self.latent_dim = int(noise_shape[-1])
        self.d_steps = _positive_int("d_steps", d_steps)
        if not 0.5 < real_label <= 1.0:
            raise ValueError(f"real_label must be in (0.5, 1]; got {real_label!r}.")
        self.real_label = float(real_label)
        if isinstance(r1_weight, bool) or not isinstance(r1_weight, (int, float)) or not r1_weight >= 0:
            raise ValueError(f"r1_weight must be a number >= 0; got {r1_weight!r}.")
        self.r1_weight = float(r1_weight)
        self._keep_average(generator, average_momentum)
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
                total = d_loss
                if self.r1_weight:
                    # A gradient of a gradient: the penalty's tape runs inside this one.
                    total = d_loss + losses.r1_penalty(self.discriminator, real, self.r1_weight)
            grads = tape.gradient(total, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # 2. One generator step: make D call the fakes real (non-saturating loss).
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(self.sample_noise(batch_size), training=True),
                                             training=True)
            g_loss = losses.generator_loss(fake_logits)
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        self.update_average()

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
        if self.r1_weight:
            raise ValueError("ConditionalGAN does not take r1_weight; use the unconditional GAN for R1.")
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
                if not self.matching_aware:
                    d_loss = losses.discriminator_loss(real_logits, fake_logits, self.real_label)
                else:
                    # A wrong label: the true one shifted by 1..num_classes-1 (never right by chance).
                    shift = keras.random.randint((batch_size,), 1, self.num_classes, seed=self.noise_seed)
                    wrong_logits = self.discriminator([real, (labels + shift) % self.num_classes], training=True)
                    # Fakes and mismatched real pairs share the "fake" half of the loss equally.
                    d_loss = 0.5 * (losses.discriminator_loss(real_logits, fake_logits, self.real_label)
                                    + losses.discriminator_loss(real_logits, wrong_logits, self.real_label))
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
        self.update_average()

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        return {m.name: m.result() for m in self.metrics}


class WGAN(OneIteratorFit, _GeneratorAverage, keras.Model):
    """Wasserstein GAN: a critic f estimates W1(p_data, p_G); the generator lowers it.

    The critic is trained to maximise E[f(x)] - E[f(G(z))] over 1-Lipschitz
    functions f (Kantorovich-Rubinstein duality); at its optimum the gap *is* the
    earth mover's distance W1, so the estimate is a loss that tracks sample quality.
    The Lipschitz constraint is kept in one of two ways (give exactly one):

    * ``clip_value=c`` (WGAN, Arjovsky et al. 2017): after every critic step each
      critic weight is clipped to [-c, c]. Crude: it bounds the Lipschitz constant
      only loosely and pushes weights to +-c.
    * ``gp_weight=lambda`` (WGAN-GP, Gulrajani et al. 2017): the critic loss gets
      lambda * E[(||grad f(x_hat)||_2 - 1)^2] at random points x_hat between real and
      fake samples. The critic must not use BatchNorm (it mixes the samples of a batch).

    Each training step takes ``n_critic`` critic steps, then one generator step. As
    in Algorithm 1 of Gulrajani et al., every critic step sees real samples of its
    own: a step receives ``n_critic`` batches of m samples stacked as one batch of
    ``n_critic * m``, and critic step i trains on the i-th slice of m (with fresh
    noise), the generator step on m noise samples. Build the data with
    ``data.make_dataset(x, batch_size=n_critic * m, passes=n_critic)`` to keep the
    number of steps per epoch of plain batches of m. (Reusing one real batch for all
    critic steps lets the critic fit those few samples; lesson 04 measures the cost.)

    Args:
        generator: noise (batch, latent_dim) -> samples.
        critic: samples -> one unbounded score per sample (no sigmoid).
        n_critic: critic updates per generator update (>= 1; 5 in both papers).
        clip_value: c for weight clipping (WGAN), or None.
        gp_weight: lambda for the gradient penalty (WGAN-GP), or None.
        average_momentum: as for ``GAN``: keep ``generator_average``, a moving average
            of the generator's weights, when given.
        seed: seed of the noise and of the interpolation points.

    Logged: ``c_loss`` (E[f(G(z))] - E[f(x)], plus the penalty for WGAN-GP),
    ``g_loss`` (-E[f(G(z))]), ``wasserstein`` (the estimate E[f(x)] - E[f(G(z))]
    of the critic's last step) and, for WGAN-GP, ``gp``.
    """

    def __init__(self, generator, critic, n_critic=5, clip_value=None, gp_weight=None, average_momentum=None,
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        if (clip_value is None) == (gp_weight is None):
            raise ValueError("Give exactly one of clip_value (weight clipping, WGAN) and gp_weight "
                             f"(gradient penalty, WGAN-GP); got clip_value={clip_value!r}, gp_weight={gp_weight!r}.")
        for name, value in (("clip_value", clip_value), ("gp_weight", gp_weight)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be a positive number; got {value!r}.")
        self.generator = generator
        self.critic = critic
        self.latent_dim = int(generator.input_shape[-1])
        self.n_critic = _positive_int("n_critic", n_critic)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.gp_weight = None if gp_weight is None else float(gp_weight)
        self._keep_average(generator, average_momentum)
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.c_loss_tracker = keras.metrics.Mean(name="c_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.wasserstein_tracker = keras.metrics.Mean(name="wasserstein")
        self.gp_tracker = keras.metrics.Mean(name="gp") if self.gp_weight is not None else None
        self.built = True

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        """``d_optimizer`` trains the critic (RMSprop for clipping, Adam(beta_1=0) for GP)."""
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = _build_optimizer("d_optimizer", d_optimizer, self.critic.trainable_variables)
        self.g_optimizer = _build_optimizer("g_optimizer", g_optimizer, self.generator.trainable_variables)

    @property
    def metrics(self):
        trackers = [self.c_loss_tracker, self.g_loss_tracker, self.wasserstein_tracker]
        return trackers + ([self.gp_tracker] if self.gp_tracker is not None else [])

    def sample_noise(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.noise_seed)

    def _slice_size(self, stacked):
        """m, the size of each critic step's slice of a stacked batch of n_critic * m."""
        n = stacked.shape[0]
        if n is None:  # only known when the step runs
            size = tf.shape(stacked)[0]
            tf.debugging.assert_equal(size % self.n_critic, 0,
                                      message="the batch size of a WGAN step must be a multiple of n_critic")
            return size // self.n_critic
        if n == 0 or n % self.n_critic:
            raise ValueError(
                f"A WGAN step takes n_critic={self.n_critic} batches of real samples stacked as one batch "
                f"of n_critic * m samples; got a batch of {n}. Make the batch size a multiple of n_critic, "
                f"for example data.make_dataset(x, batch_size={self.n_critic} * m, passes={self.n_critic}).")
        return n // self.n_critic

    def train_step(self, data):
        stacked = data[0] if isinstance(data, tuple) else data
        batch_size = self._slice_size(stacked)

        # 1. n_critic critic steps, each on its own real samples: widen the gap E[f(x)] - E[f(G(z))].
        for i in range(self.n_critic):
            real = stacked[i * batch_size:(i + 1) * batch_size]
            fake = self.generator(self.sample_noise(batch_size), training=True)
            with tf.GradientTape() as tape:
                real_scores = self.critic(real, training=True)
                fake_scores = self.critic(fake, training=True)
                c_loss = losses.critic_loss(real_scores, fake_scores)
                if self.gp_weight is not None:
                    # A gradient of a gradient: the penalty's own tape sits inside this one.
                    epsilon = keras.random.uniform((batch_size,), seed=self.noise_seed)
                    gp = losses.gradient_penalty(self.critic, real, fake, self.gp_weight, epsilon)
                    c_loss_total = c_loss + gp
                else:
                    c_loss_total = c_loss
            grads = tape.gradient(c_loss_total, self.critic.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.critic.trainable_variables))
            if self.clip_value is not None:
                # 2. Weight clipping keeps f in a compact set of functions (K-Lipschitz for some K).
                for variable in self.critic.trainable_variables:
                    variable.assign(tf.clip_by_value(variable, -self.clip_value, self.clip_value))

        # 3. One generator step: raise the critic's score on fakes.
        with tf.GradientTape() as tape:
            fake_scores_g = self.critic(self.generator(self.sample_noise(batch_size), training=True),
                                        training=True)
            g_loss = losses.wasserstein_generator_loss(fake_scores_g)
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        self.update_average()

        # 4. Running means; the Wasserstein estimate is -(critic loss without the penalty).
        self.c_loss_tracker.update_state(c_loss_total)
        self.g_loss_tracker.update_state(g_loss)
        self.wasserstein_tracker.update_state(-c_loss)
        if self.gp_tracker is not None:
            self.gp_tracker.update_state(gp)
        return {m.name: m.result() for m in self.metrics}


# --------------------------------------------------------------------- CycleGAN


@keras.saving.register_keras_serializable(package="gan_lessons")
class ImagePool(keras.layers.Layer):
    """A history of generated images for a CycleGAN discriminator (Shrivastava et al., 2017).

    Calling the pool on a batch of fresh fakes returns a batch of the same size:
    while the pool is not yet full, each fake is stored and returned as it is; once
    it is full, each fake, with probability 1/2, swaps places with a randomly chosen
    stored image (the stored one is returned, the fake stays in the pool), and
    otherwise is returned as it is. The discriminator thus also sees what the
    generators made a few hundred steps ago, which keeps it from chasing only the
    latest fakes and the two players from oscillating.

    Within one batch the swapping images pick distinct stored images (a batch no
    larger than the pool never takes one stored image twice). ``size=0`` turns the
    pool off: the batch is returned unchanged.
    """

    def __init__(self, size=50, image_shape=(28, 28, 1), seed=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative integer; got {size!r}.")
        self.size = size
        self.image_shape = tuple(int(s) for s in image_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.images = self.add_weight(shape=(max(size, 1),) + self.image_shape, initializer="zeros",
                                      trainable=False, name="images")
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False,
                                     name="count")
        self.built = True

    def call(self, images):
        images = tf.convert_to_tensor(images, dtype=self.images.dtype)
        if self.size == 0:
            return images
        n = tf.shape(images)[0]
        count = tf.convert_to_tensor(self.count)
        pos = tf.range(n)
        free = self.size - count
        # 1. While there is room, images fill the empty slots count, count+1, ... and come back as they are.
        fills = pos < free
        # 2. The others swap with a stored image, each with probability 1/2. The stored
        #    images are visited in a random order of the slots filled before this batch.
        coin = keras.random.uniform((n,), seed=self.seed_generator) < 0.5
        swaps = tf.logical_and(tf.logical_and(tf.logical_not(fills), coin), count > 0)
        keys = keras.random.uniform((self.size,), seed=self.seed_generator)
        keys += 2.0 * tf.cast(tf.range(self.size) >= count, keys.dtype)  # empty slots last
        order = tf.cast(tf.argsort(keys), tf.int32)
        rank = tf.math.floormod(pos - tf.maximum(free, 0), tf.maximum(count, 1))
        swap_slot = tf.gather(order, rank)
        stored = tf.gather(self.images, swap_slot)
        out = tf.where(swaps[:, None, None, None], stored, images)
        # 3. Write the new images into their slots.
        write = tf.logical_or(fills, swaps)
        slots = tf.where(fills, count + pos, swap_slot)
        self.images.assign(tf.tensor_scatter_nd_update(
            self.images, tf.boolean_mask(slots, write)[:, None], tf.boolean_mask(images, write)))
        self.count.assign(tf.minimum(count + n, self.size))
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "image_shape": self.image_shape, "seed": self.seed}


@keras.saving.register_keras_serializable(package="gan_lessons")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """CycleGAN's learning rate: constant, then falling linearly to zero.

    lr(step) = initial_learning_rate while step < constant_fraction * total_steps, then
    decreases in a straight line to 0 at ``total_steps`` (the paper: 2e-4 for 100
    epochs, then linearly to 0 over the next 100). With ``total_steps=None`` the
    schedule is sized by ``CycleGAN.fit`` (epochs x steps per epoch), so it fits any
    run length; until then it stays at the initial rate.
    """

    def __init__(self, initial_learning_rate=2e-4, total_steps=None, constant_fraction=0.5):
        if not initial_learning_rate > 0:
            raise ValueError(f"initial_learning_rate must be positive; got {initial_learning_rate!r}.")
        if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)
                                        or total_steps <= 0):
            raise ValueError(f"total_steps must be a positive integer or None; got {total_steps!r}.")
        if not 0.0 <= constant_fraction < 1.0:
            raise ValueError(f"constant_fraction must be in [0, 1); got {constant_fraction!r}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_fraction = float(constant_fraction)
        self.auto = total_steps is None
        # A variable, so that fit() can size the schedule after a train step was traced.
        self._total = tf.Variable(float(total_steps or 0), trainable=False, dtype=tf.float32)

    @property
    def total_steps(self):
        total = int(self._total.numpy())
        return total or None

    def set_total_steps(self, total_steps):
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"total_steps must be a positive integer; got {total_steps!r}.")
        self._total.assign(float(total_steps))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        total = self._total
        start = self.constant_fraction * total
        falling = (total - step) / tf.maximum(total - start, 1.0)
        rate = self.initial_learning_rate * tf.clip_by_value(falling, 0.0, 1.0)
        return tf.where(total > 0, rate, self.initial_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "constant_fraction": self.constant_fraction}


class CycleGAN(OneIteratorFit, keras.Model):
    """Unpaired image-to-image translation (Zhu et al., 2017) with two generators and two
    discriminators.

    G_ab turns A images into B images and G_ba turns B into A; D_a and D_b are
    PatchGAN discriminators judging each domain. One training step on an unpaired
    batch (real_a, real_b):

    1. Generators (one optimizer for both):
       least-squares GAN loss  (D_b(G_ab(a)) - 1)^2 + (D_a(G_ba(b)) - 1)^2
       + cycle loss            cycle_weight * (|a - G_ba(G_ab(a))| + |b - G_ab(G_ba(b))|)
       + identity loss         identity_weight * (|b - G_ab(b)| + |a - G_ba(a)|)
    2. Discriminators (one optimizer for both), on fakes drawn from an ``ImagePool``:
       0.5 * [(D(real) - 1)^2 + D(pooled fake)^2] for each of D_a and D_b.

    Args:
        generator_ab, generator_ba: images -> images (the two translators).
        discriminator_a, discriminator_b: images -> a grid of patch scores.
        cycle_weight: lambda of the cycle loss (10 in the paper; 0 removes it).
        identity_weight: weight of the identity loss (0.5 * lambda = 5 in the paper; 0 removes it).
        pool_size: images each pool keeps (50 in the paper; 0: no pool).
        seed: seed of the pools' random choices.
    """

    def __init__(self, generator_ab, generator_ba, discriminator_a, discriminator_b, cycle_weight=10.0,
                 identity_weight=5.0, pool_size=50, seed=0, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("cycle_weight", cycle_weight), ("identity_weight", identity_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{arg} must be a non-negative number; got {value!r}.")
        self.generator_ab = generator_ab
        self.generator_ba = generator_ba
        self.discriminator_a = discriminator_a
        self.discriminator_b = discriminator_b
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.pool_a = ImagePool(pool_size, generator_ba.output_shape[1:], seed=seed, name="pool_a")
        self.pool_b = ImagePool(pool_size, generator_ab.output_shape[1:], seed=seed + 1, name="pool_b")
        names = ("g_loss", "adversarial_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.built = True

    @property
    def generator(self):
        """G_ab, so callbacks written for one generator (SampleGrid) show A -> B."""
        return self.generator_ab

    def call(self, images_a, training=False):
        return self.generator_ab(images_a, training=training)

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = _build_optimizer(
            "g_optimizer", g_optimizer,
            self.generator_ab.trainable_variables + self.generator_ba.trainable_variables)
        self.d_optimizer = _build_optimizer(
            "d_optimizer", d_optimizer,
            self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def fit(self, x=None, y=None, epochs=1, **kwargs):
        """``keras.Model.fit``; first sizes any ``LinearDecay`` left with total_steps=None
        to the whole run (epochs x steps per epoch)."""
        steps = kwargs.get("steps_per_epoch")
        if steps is None:
            steps = _dataset_length(x)
        for optimizer in (getattr(self, "g_optimizer", None), getattr(self, "d_optimizer", None)):
            schedule = getattr(optimizer, "_learning_rate", None)
            if isinstance(schedule, LinearDecay) and schedule.auto:
                if steps is None or steps <= 0:
                    raise ValueError("fit needs a dataset of known length (or steps_per_epoch) to size "
                                     "the LinearDecay learning-rate schedule; give it total_steps instead.")
                schedule.set_total_steps(int(epochs) * steps)
        return super().fit(x, y, epochs=epochs, **kwargs)

    def train_step(self, data):
        real_a, real_b = data
        g_ab, g_ba, d_a, d_b = self.generator_ab, self.generator_ba, self.discriminator_a, self.discriminator_b

        # 1. Generators: fool both discriminators, come back home, leave target-domain images alone.
        with tf.GradientTape() as tape:
            fake_b = g_ab(real_a, training=True)
            fake_a = g_ba(real_b, training=True)
            adversarial = (losses.lsgan_generator_loss(d_b(fake_b, training=True))
                           + losses.lsgan_generator_loss(d_a(fake_a, training=True)))
            cycle = tf.constant(0.0)
            if self.cycle_weight:
                cycle = (losses.cycle_loss(real_a, g_ba(fake_b, training=True), self.cycle_weight)
                         + losses.cycle_loss(real_b, g_ab(fake_a, training=True), self.cycle_weight))
            identity = tf.constant(0.0)
            if self.identity_weight:
                identity = (losses.identity_loss(real_b, g_ab(real_b, training=True), self.identity_weight)
                            + losses.identity_loss(real_a, g_ba(real_a, training=True), self.identity_weight))
            g_loss = adversarial + cycle + identity
        g_vars = g_ab.trainable_variables + g_ba.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))

        # 2. Discriminators: real -> 1, fakes (half of them from the pool of older fakes) -> 0.
        pooled_a = self.pool_a(fake_a)
        pooled_b = self.pool_b(fake_b)
        with tf.GradientTape() as tape:
            d_a_loss = losses.lsgan_discriminator_loss(d_a(real_a, training=True), d_a(pooled_a, training=True))
            d_b_loss = losses.lsgan_discriminator_loss(d_b(real_b, training=True), d_b(pooled_b, training=True))
            d_loss = d_a_loss + d_b_loss
        d_vars = d_a.trainable_variables + d_b.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))

        # 3. Report running means.
        for name, value in (("g_loss", g_loss), ("adversarial_loss", adversarial), ("cycle_loss", cycle),
                            ("identity_loss", identity), ("d_a_loss", d_a_loss), ("d_b_loss", d_b_loss)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
