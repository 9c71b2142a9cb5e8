"""What ``python -m gan_lessons train MODEL`` trains: one recipe per model.

A recipe knows its data, its networks and optimizers, its default epochs and
batch size, and which files it saves. The command line does the rest (refusing
a finished run, resuming an unfinished one, history, samples).
"""

from pathlib import Path

import keras
import numpy as np

from gan_lessons import data, models, trainers

RECIPES = {}


def register(recipe_class):
    """Class decorator: make a recipe available to the command line by its name."""
    RECIPES[recipe_class.name] = recipe_class()
    return recipe_class


def get(name):
    if name not in RECIPES:
        raise ValueError(f"MODEL must be one of {', '.join(RECIPES)}; got {name!r}.")
    return RECIPES[name]


class Recipe:
    """Base recipe: an unconditional image GAN on MNIST.

    Subclasses set the class attributes and override ``build`` (and, when their
    inputs or outputs differ, ``load_data``, ``make_dataset``, ``sample_inputs``,
    ``sample_images`` and ``save``).
    """

    name = ""
    help = ""
    epochs = 20
    batch_size = 64
    quick_epochs = 2
    quick_limit = 512
    latent_dim = 64
    output_files = ("generator.keras",)
    monitor_keys = ("d_loss", "g_loss")

    def load_data(self, quick):
        """Training (images, labels)."""
        return data.load_mnist("train", limit=self.quick_limit if quick else None)

    def make_dataset(self, x, y, batch_size, seed):
        return data.make_dataset(x, batch_size=batch_size, seed=seed)

    def prepare(self, out_dir, x, y, seed):
        """Called once before training starts (first run only); write extra files here."""

    def build(self, seed):
        """Return a compiled trainer with a ``generator`` attribute."""
        raise NotImplementedError

    def sample_inputs(self, trainer, seed, n=100):
        """Fixed inputs for samples.png (the same across a resumed run)."""
        return np.random.default_rng(seed + 1).standard_normal((n, self.latent_dim)).astype("float32")

    @staticmethod
    def final_generator(trainer):
        """The generator to save: the moving average of its weights when the trainer keeps one."""
        average = getattr(trainer, "generator_average", None)
        return trainer.generator if average is None else average

    def sample_images(self, trainer, inputs):
        return np.asarray(self.final_generator(trainer)(inputs, training=False))

    def save(self, trainer, out_dir):
        self.final_generator(trainer).save(Path(out_dir) / "generator.keras")

    def evaluate(self, out_dir, n=1000, seed=0):
        """Metrics of a finished run, as a JSON-serialisable dict."""
        from gan_lessons import metrics

        generator = keras.saving.load_model(Path(out_dir) / "generator.keras", compile=False)
        return metrics.evaluate_generator(generator, n=n, seed=seed)


def _adam(lr=2e-4, beta_1=0.5, beta_2=0.999):
    return keras.optimizers.Adam(lr, beta_1=beta_1, beta_2=beta_2)


@register
class GANRecipe(Recipe):
    name = "gan"
    help = "the MLP GAN of lesson 01"
    epochs = 60
    batch_size = 64

    def build(self, seed):
        gan = trainers.GAN(models.mlp_generator(self.latent_dim), models.mlp_discriminator(), seed=seed)
        gan.compile(_adam(), _adam())
        return gan


@register
class DCGANRecipe(Recipe):
    """Lesson 02's DCGAN, with the settings measured best on a 2-core CPU budget.

    Adam at 6e-4 (beta_1 = 0.5) for both players, batch 32, one-sided label smoothing
    (0.9), and an exponential moving average of all the generator's weights (momentum
    0.999, about the last 1,000 steps; ``trainers.GAN(average_momentum=...)``). The saved
    generator is the average: the raw weights jitter with every step at this learning
    rate, and their average draws cleaner digits.

    The discriminator has the extra 3x3 convolution at 7x7 (``refine=True``), so that it
    judges whole digits, not 10x10 patches added up. It makes an epoch about a third
    slower and is worth it: with these defaults (seed 0, 2-core CPU) the command line
    reached FID 15.5 (2.3 times the floor; 15.8 with seed 1) in 7 minutes; with the
    two-layer discriminator and 75 epochs, 8 to 9 minutes, it ended at 27.7 to 29.3.
    Trial runs on one thread: 15.1 and 16.3 after 45 epochs (seeds 0 and 1) against 40
    and 45 for the two-layer discriminator after 30.
    """

    name = "dcgan"
    help = "the DCGAN of lesson 02 (refined discriminator, Adam 6e-4, batch 32, averaged generator weights)"
    epochs = 50
    batch_size = 32
    learning_rate = 6e-4
    average_momentum = 0.999

    def build(self, seed):
        gan = trainers.GAN(models.dcgan_generator(self.latent_dim), models.dcgan_discriminator(refine=True),
                           real_label=0.9, average_momentum=self.average_momentum, seed=seed)
        gan.compile(_adam(self.learning_rate), _adam(self.learning_rate))
        return gan


@register
class CGANRecipe(Recipe):
    name = "cgan"
    help = "the conditional GAN of lesson 03 with the matching-aware discriminator ([noise, label] -> digit)"
    epochs = 60
    batch_size = 64

    def make_dataset(self, x, y, batch_size, seed):
        return data.make_dataset(x, y, batch_size=batch_size, seed=seed)

    def build(self, seed):
        gan = trainers.ConditionalGAN(models.conditional_generator(self.latent_dim),
                                      models.conditional_discriminator(), real_label=0.9,
                                      matching_aware=True, seed=seed)
        gan.compile(_adam(), _adam())
        return gan

    def sample_inputs(self, trainer, seed, n=100):
        noise = np.random.default_rng(seed + 1).standard_normal((n, self.latent_dim)).astype("float32")
        labels = (np.arange(n) // max(n // 10, 1)).clip(0, 9).astype("int32")
        return [noise, labels]


class _CriticStepsRecipe(Recipe):
    """A WGAN recipe: every step takes n_critic batches of ``batch_size`` real images,
    one per critic step, stacked; an epoch is n_critic shuffled passes over the data
    (as many generator steps as batches of ``batch_size``)."""

    n_critic = 5

    def make_dataset(self, x, y, batch_size, seed):
        return data.make_dataset(x, batch_size=batch_size * self.n_critic, seed=seed, passes=self.n_critic)


@register
class WGANRecipe(_CriticStepsRecipe):
    """Lesson 04's WGAN with weight clipping: the settings of Arjovsky et al. (2017)
    (RMSprop 5e-5, clip 0.01, n_critic 5) on the DCGAN-shaped networks."""

    name = "wgan"
    help = "the weight-clipped WGAN of lesson 04 (RMSprop 5e-5, clip 0.01, n_critic 5)"
    epochs = 60
    batch_size = 32
    g_filters = 32
    c_filters = 32
    monitor_keys = ("c_loss", "g_loss", "wasserstein")

    def build(self, seed):
        wgan = trainers.WGAN(models.dcgan_generator(self.latent_dim, self.g_filters), models.critic(self.c_filters),
                             n_critic=self.n_critic, clip_value=0.01, seed=seed)
        wgan.compile(keras.optimizers.RMSprop(5e-5), keras.optimizers.RMSprop(5e-5))
        return wgan


@register
class WGANGPRecipe(_CriticStepsRecipe):
    """Lesson 04's WGAN-GP: lambda = 10, epsilon ~ U[0, 1] per sample, a critic without
    BatchNorm, n_critic 5, every critic step on its own batch of 32 real digits.

    Sized for a 2-core CPU (under 10 minutes): 32-filter generator and critic (the
    generator runs n_critic + 1 times per step, the critic's penalty needs a second
    backpropagation), batch 32, and Adam at 5e-4 with beta_1 = 0.5, beta_2 = 0.9. In
    200-second trials with a smaller, two-layer generator these settings reached FID 68,
    against 101 with 2e-4 and beta_1 = 0 and 119 with the paper's 1e-4 and beta_1 = 0:
    the paper's settings are safe but slow for a CPU budget. The saved generator is the
    moving average of the generator's weights (momentum 0.999), as in the dcgan recipe.

    The critic has the dcgan recipe's extra 3x3 convolution at 7x7 (``refine=True``).
    An epoch takes about 1.5 times as long, and 30 epochs do far more than 60 without
    it: with these defaults (seed 0, 2-core CPU) the command line reached FID 20.4
    (3.0 times the floor; 24.3 with seed 1) in 6 minutes, against 27.3 in about 8
    minutes for 60 epochs with the two-layer critic.

    Fresh real digits for each critic step (Algorithm 1 of Gulrajani et al.) matter: with
    one batch reused for all five critic steps, a run with the two-layer critic (seed 0,
    60 epochs, the same time) ended at FID 38.7 instead of 28.0.
    """

    name = "wgan-gp"
    help = "the WGAN with gradient penalty of lesson 04 (refined critic, Adam 5e-4, lambda 10, n_critic 5)"
    epochs = 30
    batch_size = 32
    g_filters = 32
    c_filters = 32
    learning_rate = 5e-4
    beta_1 = 0.5
    average_momentum = 0.999
    monitor_keys = ("c_loss", "g_loss", "wasserstein", "gp")

    def build(self, seed):
        wgan = trainers.WGAN(models.dcgan_generator(self.latent_dim, self.g_filters),
                             models.critic(self.c_filters, refine=True),
                             n_critic=self.n_critic, gp_weight=10.0, average_momentum=self.average_momentum,
                             seed=seed)
        wgan.compile(_adam(self.learning_rate, beta_1=self.beta_1, beta_2=0.9),
                     _adam(self.learning_rate, beta_1=self.beta_1, beta_2=0.9))
        return wgan


@register
class CycleGANRecipe(Recipe):
    """Lesson 05's CycleGAN: A = plain MNIST digits, B = the same kind of digit drawn by
    ``domains.style`` (hollow, outlined, with a drop shadow), from disjoint source digits.

    Writes generator_ab.keras (A -> B), generator_ba.keras (B -> A), both mapping
    (batch, 28, 28, 1) in [-1, 1] to the same shape, and test_domains.npz (held-out
    A and B digits with their classes, from the test split, never trained on).
    """

    name = "cyclegan"
    help = "the CycleGAN of lesson 05 (plain digits <-> outlined digits; two generators)"
    epochs = 10
    batch_size = 32
    quick_epochs = 1
    quick_limit = 256
    train_limit = 4000
    test_limit = 1000
    filters = 24
    residual_blocks = 3
    d_filters = 32
    learning_rate = 2e-4
    output_files = ("generator_ab.keras", "generator_ba.keras", "test_domains.npz")
    monitor_keys = ("g_loss", "cycle_loss", "d_a_loss", "d_b_loss")

    def load_data(self, quick):
        from gan_lessons import domains

        return domains.load_digit_domains("train", limit=self.quick_limit if quick else self.train_limit), None

    def test_domains(self, quick=False, verbose=False):
        from gan_lessons import domains

        return domains.load_digit_domains("test", limit=self.quick_limit if quick else self.test_limit,
                                          verbose=verbose)

    def make_dataset(self, x, y, batch_size, seed):
        from gan_lessons import domains

        return domains.make_unpaired_dataset(x, batch_size=batch_size, seed=seed)

    def prepare(self, out_dir, x, y, seed):
        from gan_lessons import domains, runtime

        domains.save_domains(self.test_domains(runtime.is_quick()), Path(out_dir) / "test_domains.npz")

    def build(self, seed):
        def generator(name):
            return models.resnet_generator(filters=self.filters, residual_blocks=self.residual_blocks, name=name)

        def discriminator(name):
            return models.patchgan_discriminator(filters=self.d_filters, name=name)

        gan = trainers.CycleGAN(generator("generator_ab"), generator("generator_ba"),
                                discriminator("discriminator_a"), discriminator("discriminator_b"),
                                cycle_weight=10.0, identity_weight=5.0, pool_size=50, seed=seed)
        # LinearDecay with no total: CycleGAN.fit sizes it to the run (constant, then down to 0).
        gan.compile(_adam(trainers.LinearDecay(self.learning_rate)), _adam(trainers.LinearDecay(self.learning_rate)))
        return gan

    def sample_inputs(self, trainer, seed, n=100):
        from gan_lessons import runtime

        test = self.test_domains(runtime.is_quick())
        return test.a[:10], test.b[:10]

    def sample_images(self, trainer, inputs):
        """One row per example: A, A->B, A->B->A, true style(A), B, B->A, B->A->B (10 rows x 7)."""
        from gan_lessons import domains

        a, b = inputs
        fake_b = np.asarray(trainer.generator_ab(a, training=False))
        fake_a = np.asarray(trainer.generator_ba(b, training=False))
        columns = [a, fake_b, np.asarray(trainer.generator_ba(fake_b, training=False)), domains.style(a),
                   b, fake_a, np.asarray(trainer.generator_ab(fake_a, training=False))]
        return np.stack(columns, axis=1).reshape((-1,) + a.shape[1:])

    def save(self, trainer, out_dir):
        trainer.generator_ab.save(Path(out_dir) / "generator_ab.keras")
        trainer.generator_ba.save(Path(out_dir) / "generator_ba.keras")

    def evaluate(self, out_dir, n=1000, seed=0):
        """Class kept B->A and A->B->A, cycle errors and the error against the true style,
        on the held-out domains saved with the run (at most ``n`` images of each)."""
        from gan_lessons import domains, metrics

        metrics.load_classifier(verbose=False)  # keep stdout pure JSON
        out_dir = Path(out_dir)
        g_ab = keras.saving.load_model(out_dir / "generator_ab.keras", compile=False)
        g_ba = keras.saving.load_model(out_dir / "generator_ba.keras", compile=False)
        test = domains.read_domains(out_dir / "test_domains.npz")
        test = domains.UnpairedDomains(a=test.a[:n], b=test.b[:n], a_labels=test.a_labels[:n],
                                       b_labels=test.b_labels[:n])
        return {"n_a": len(test.a), "n_b": len(test.b), **domains.translation_report(g_ab, g_ba, test)}
