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

    def sample_images(self, trainer, inputs):
        return np.asarray(trainer.generator(inputs, training=False))

    def save(self, trainer, out_dir):
        trainer.generator.save(Path(out_dir) / "generator.keras")

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
    name = "dcgan"
    help = "the DCGAN of lesson 02"
    epochs = 60
    batch_size = 64

    def build(self, seed):
        gan = trainers.GAN(models.dcgan_generator(self.latent_dim), models.dcgan_discriminator(),
                           real_label=0.9, seed=seed)
        gan.compile(_adam(), _adam())
        return gan


@register
class CGANRecipe(Recipe):
    name = "cgan"
    help = "the conditional GAN of lesson 03 (generator takes [noise, label])"
    epochs = 60
    batch_size = 64

    def make_dataset(self, x, y, batch_size, seed):
        return data.make_dataset(x, y, batch_size=batch_size, seed=seed)

    def build(self, seed):
        gan = trainers.ConditionalGAN(models.conditional_generator(self.latent_dim),
                                      models.conditional_discriminator(), real_label=0.9, seed=seed)
        gan.compile(_adam(), _adam())
        return gan

    def sample_inputs(self, trainer, seed, n=100):
        noise = np.random.default_rng(seed + 1).standard_normal((n, self.latent_dim)).astype("float32")
        labels = (np.arange(n) // max(n // 10, 1)).clip(0, 9).astype("int32")
        return [noise, labels]
