"""What the command line trains: one ``Recipe`` per MODEL, how it is built, fed, saved and reported
(``runs.train`` runs one into a run folder). Lesson 09 trains ``build_cgan``'s model.
"""

import json
import time
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from gan_lessons import callbacks, cgan, checks, cyclegan, data, diffusion, digit_tasks, distribute, gan, metrics
from gan_lessons import pix2pix, plots, stylegan, wgan

LATENT_DIM, N_CRITIC = 64, 5
QUICK_EPOCHS, QUICK_DIGITS = 1, 256
IMAGE_SHAPE = (28, 28, 1)


# ------------------------------------------------------------------ how each is built


def _adam(rate=2e-4, beta_1=0.5, beta_2=0.999):
    return keras.optimizers.Adam(rate, beta_1=beta_1, beta_2=beta_2)


def _compiled(trainer, extra=(), **optimizers):
    """The trainer compiled for the strategy and precision (``distribute``), and its extra callbacks."""
    distribute.replica_seeds(trainer)
    trainer.compile(**{name: distribute.optimizer(optimizer) for name, optimizer in optimizers.items()})
    return trainer, list(extra)


def build_gan(seed, total_steps):
    trainer = gan.GAN(gan.mlp_generator(LATENT_DIM), gan.mlp_discriminator(), seed=seed)
    return _compiled(trainer, d_optimizer=_adam(), g_optimizer=_adam())


def build_dcgan(seed, total_steps):
    trainer = gan.GAN(gan.dcgan_generator(LATENT_DIM), gan.dcgan_discriminator(refine=True), real_label=0.9, seed=seed)
    return _compiled(trainer, [callbacks.GeneratorAverage(0.999)], d_optimizer=_adam(6e-4), g_optimizer=_adam(6e-4))


def build_cgan(seed, total_steps):
    """Lesson 03's conditional GAN on lesson 02's recipe. Returns (compiled trainer, [GeneratorAverage])."""
    trainer = cgan.ConditionalGAN(cgan.conditional_generator(LATENT_DIM), cgan.conditional_discriminator(refine=True),
                                  real_label=0.9, seed=seed)
    return _compiled(trainer, [callbacks.GeneratorAverage(0.999)], d_optimizer=_adam(6e-4), g_optimizer=_adam(6e-4))


def build_wgan(seed, total_steps):
    trainer = wgan.WGAN(gan.dcgan_generator(LATENT_DIM, 32), wgan.critic(32), n_critic=N_CRITIC, clip_value=0.01,
                        seed=seed)
    return _compiled(trainer, d_optimizer=keras.optimizers.RMSprop(5e-5), g_optimizer=keras.optimizers.RMSprop(5e-5))


def build_wgan_gp(seed, total_steps):
    trainer = wgan.WGAN(gan.dcgan_generator(LATENT_DIM, 32), wgan.critic(32, refine=True), n_critic=N_CRITIC,
                        gp_weight=10.0, seed=seed)
    return _compiled(trainer, [callbacks.GeneratorAverage(0.999)], d_optimizer=_adam(5e-4, beta_2=0.9),
                     g_optimizer=_adam(5e-4, beta_2=0.9))


def build_cyclegan(seed, total_steps):
    g_ab, g_ba = (cyclegan.resnet_generator(24, 3, name=f"generator_{ab}") for ab in ("ab", "ba"))
    d_a, d_b = (cyclegan.patchgan_discriminator(32, name=f"discriminator_{a}") for a in ("a", "b"))
    return _compiled(cyclegan.CycleGAN(g_ab, g_ba, d_a, d_b, seed=seed),
                     d_optimizer=_adam(cyclegan.LinearDecay(2e-4, total_steps)),
                     g_optimizer=_adam(cyclegan.LinearDecay(2e-4, total_steps)))


def build_pix2pix(seed, total_steps):
    trainer = pix2pix.Pix2Pix(pix2pix.unet_generator(32), pix2pix.conditional_patchgan(32), l1_weight=100.0)
    return _compiled(trainer, d_optimizer=_adam(), g_optimizer=_adam())


def build_stylegan(seed, total_steps):
    # The mapping network learns at a third of the synthesis network's rate: StyleGAN's hundredth
    # (5e-6) barely moves it in a run of 4,375 steps (lesson 08). R1 at gamma 1.0: at 0.1 the
    # discriminator won from the second epoch with some seeds.
    generator = stylegan.style_generator(stylegan.mapping_network(LATENT_DIM), stylegan.synthesis_network(seed=seed))
    return _compiled(stylegan.StyleGAN(generator, stylegan.discriminator(), r1_weight=1.0, seed=seed),
                     [callbacks.GeneratorAverage(0.999)], d_optimizer=_adam(1e-3, beta_2=0.99),
                     g_optimizer=_adam(5e-4, beta_2=0.99), mapping_optimizer=_adam(1.5e-4, beta_2=0.99))


# diffusion: an autoencoder (digit -> 7x7x4) first, then a conditional U-Net denoises its latents.
AUTOENCODER_EPOCHS, SAMPLE_STEPS, GUIDANCE, N_SAMPLES = 10, 25, 1.5, 1000
LATENT_SHAPE = (7, 7, 4)


def build_diffusion(seed, total_steps):
    trainer = diffusion.Diffusion(diffusion.unet(LATENT_SHAPE, (64, 128)), diffusion.Schedule.cosine(1000),
                                  target="v", label_dropout=0.1, seed=seed)
    return _compiled(trainer, [callbacks.GeneratorAverage(0.999, network="denoiser")],
                     optimizer=keras.optimizers.Adam(1e-3))


# ------------------------------------------------------------------- how each is fed


@dataclass(frozen=True)
class Feed:
    """``load(quick, source)``: (training data, held-out data or None, size); ``stream(train, run)``: (dataset,
    steps per epoch); ``held_out``: its file; ``batch_axis``: the axis of a step's batch the replicas split."""

    load: Callable
    stream: Callable
    held_out: str = None
    batch_axis: int = 0


def _digits(quick, source):
    x, y = data.load_mnist("train", source=source, limit=QUICK_DIGITS if quick else None)
    return (x, y), None, len(x)


def _split(loader, source, limits):
    train, test = (loader(split, limit=limit, source=source, verbose=False)
                   for split, limit in zip(("train", "test"), limits))
    return train, test, len(train)


def _latents(train, run):
    """Train the autoencoder (or load a resumed run's), write diffusion.json, stream the scaled latents."""
    (x, y), folder = train, run.folder
    paths = [folder / "encoder.keras", folder / "decoder.keras"]
    if all(p.is_file() for p in paths):
        encoder, decoder = _load(paths[0], IMAGE_SHAPE, LATENT_SHAPE), _load(paths[1], LATENT_SHAPE)
    else:
        epochs = QUICK_EPOCHS if run["quick"] else AUTOENCODER_EPOCHS
        print(f"Part 1: the autoencoder (28x28x1 -> 7x7x4 -> 28x28x1), {epochs} epochs.")
        encoder, decoder = diffusion.autoencoder(LATENT_SHAPE[-1])
        start = time.perf_counter()
        diffusion.train_autoencoder(encoder, decoder, x, epochs=epochs, batch_size=64,
                                    callbacks=[callbacks.Progress(keys=["loss"])])
        run.save(autoencoder_seconds=round(time.perf_counter() - start, 1))
        for model, path in zip((encoder, decoder), paths):
            _save(model, path)
    latents = diffusion.encode(encoder, x)
    scale = float(1.0 / latents.std())  # latents of spread 1, as the noise they are mixed with
    reconstruction = float(np.mean(np.abs(diffusion.decode(decoder, latents[:1000]) - x[:1000])))
    config = {"schedule": "cosine", "T": 1000, "target": "v", "latent_scale": scale,
              "latent_shape": list(LATENT_SHAPE), "steps": 2 if run["quick"] else SAMPLE_STEPS,
              "guidance": GUIDANCE, "autoencoder_l1": round(reconstruction, 4)}
    (folder / "diffusion.json").write_text(json.dumps(config, indent=1))
    print(f"Autoencoder: mean absolute reconstruction error {reconstruction:.3f} on training digits. "
          "Part 2: the denoiser on its latents.")
    return data.make_dataset((latents * scale).astype(np.float32), y, run["batch_size"], run["seed"])


IMAGES = Feed(_digits, lambda t, run: data.make_dataset(t[0], None, run["batch_size"], run["seed"]))
LABELLED = Feed(_digits, lambda t, run: data.make_dataset(*t, run["batch_size"], run["seed"]))
CRITIC = Feed(_digits, lambda t, run: data.make_dataset(t[0], None, run["batch_size"], run["seed"], N_CRITIC),
              batch_axis=1)  # N_CRITIC batches a step, stacked on axis 0
DOMAINS = Feed(lambda quick, source: _split(digit_tasks.load_digit_domains, source,
                                            (QUICK_DIGITS // 2,) * 2 if quick else (4000, 1000)),
               lambda t, run: data.make_unpaired_dataset(t.a, t.b, run["batch_size"], run["seed"]),
               "test_domains.npz")
PAIRS = Feed(lambda quick, source: _split(digit_tasks.load_pairs, source,
                                          (QUICK_DIGITS, QUICK_DIGITS // 2) if quick else (None, 1000)),
             lambda t, run: data.make_dataset(t.inputs, t.targets, run["batch_size"], run["seed"]),
             "test_pairs.npz")
LATENTS = Feed(_digits, _latents)


# ----------------------------------------------------------- how each is saved and read


def _save(model, path):
    """Save ``model`` (in float32 after a mixed-precision run) and return what was saved."""
    if keras.config.dtype_policy().name != "float32":
        model = distribute.float32_copy(model)
    model.save(path)
    return model


def _load(path, takes, makes=IMAGE_SHAPE):
    """The network saved at ``path``, checked: from inputs of shape ``takes`` to outputs of shape ``makes``."""
    try:
        model = metrics.single_input(keras.saving.load_model(path, compile=False))
    except Exception as exc:  # Keras's message can run to pages: keep its first sentence
        first = str(exc).strip().split("\n")[0].split(". ")[0].rstrip(".")
        raise checks.BadArgument(f"{path} could not be loaded: {first}.") from None
    took, made = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    if (took, made) != (tuple(takes), tuple(makes)):
        raise checks.BadArgument(f"{path} holds a network from inputs of shape {took} to outputs of shape {made}, "
                                 f"not {tuple(takes)} to {tuple(makes)}; train a new run in another folder.")
    return model


def _read(path, reader):
    try:
        return reader(path)
    except (OSError, KeyError, ValueError) as exc:
        raise checks.BadArgument(f"{path} could not be read ({exc}).") from None


def _grid(columns, run):
    """samples.png: one row per example, the ``columns`` side by side."""
    images = np.stack(columns, axis=1).reshape((-1, *IMAGE_SHAPE))
    plots.save_grid_png(images, run.folder / "samples.png", rows=10)


def save_generator(trainer, run, held_out):
    """generator.keras (the averaged one when there is one) and 100 of its digits (cgan: a row per class)."""
    generator = _save(getattr(trainer, "generator_average", trainer.generator), run.folder / "generator.keras")
    noise = np.random.default_rng(run["seed"] + 1).standard_normal((100, LATENT_DIM)).astype("float32")
    inputs = [noise, np.repeat(np.arange(10), 10)] if len(generator.inputs) == 2 else noise
    plots.save_grid_png(metrics.generate(generator, inputs), run.folder / "samples.png", rows=10)
    return "the generator"


def report_generator(folder, n, seed):
    return metrics.evaluate_generator(_load(folder / "generator.keras", (LATENT_DIM,)), n=n, seed=seed)


def save_translators(trainer, run, held_out):
    """generator_ab.keras, generator_ba.keras; rows A, A->B, A->B->A, style(A), B, B->A, B->A->B."""
    g_ab, g_ba = (_save(getattr(trainer, f"generator_{d}"), run.folder / f"generator_{d}.keras") for d in ("ab", "ba"))
    a, b = held_out.a[:10], held_out.b[:10]
    fake_b, fake_a = metrics.generate(g_ab, a), metrics.generate(g_ba, b)
    _grid([a, fake_b, metrics.generate(g_ba, fake_b), digit_tasks.style(a), b, fake_a, metrics.generate(g_ab, fake_a)],
          run)
    return "the generator"


def report_translators(folder, n, seed):
    test = _read(folder / DOMAINS.held_out, lambda path: digit_tasks.UnpairedDomains.load(path).head(n))
    g_ab, g_ba = (_load(folder / f"generator_{d}.keras", IMAGE_SHAPE) for d in ("ab", "ba"))
    # How real the B -> A digits look: their FID against held-out A digits that no B digit was made from.
    fid_b_to_a = metrics.fid(metrics.features(metrics.generate(g_ba, test.b)), metrics.features(test.a))
    return {"n_a": len(test.a), "n_b": len(test.b), **cyclegan.translation_report(g_ab, g_ba, test),
            "fid_b_to_a": fid_b_to_a, "fid_floor": metrics.fid_floor(len(test.b))}


def save_sketch_to_digit(trainer, run, held_out):
    """generator.keras; rows of input, output, truth."""
    generator, pairs = _save(trainer.generator, run.folder / "generator.keras"), held_out.head(30)
    _grid([pairs.inputs, metrics.generate(generator, pairs.inputs), pairs.targets], run)
    return "the generator"


def report_sketch_to_digit(folder, n, seed):
    test = _read(folder / PAIRS.held_out, lambda path: digit_tasks.Pairs.load(path).head(n))
    generator = _load(folder / "generator.keras", IMAGE_SHAPE)
    return {"n": len(test), **pix2pix.translation_report(generator, test.inputs, test.targets, test.labels)}


def save_diffusion(trainer, run, held_out):
    """denoiser.keras (averaged), N_SAMPLES digits in samples.npz, ten of each class in samples.png."""
    _save(trainer.denoiser_average, run.folder / "denoiser.keras")
    images, labels, steps, guidance, seconds = sample_diffusion(run.folder, run.folder / "samples.npz", N_SAMPLES,
                                                                seed=run["seed"])
    grid = np.concatenate([images[labels == c][:10] for c in range(10)])
    plots.save_grid_png(grid, run.folder / "samples.png", rows=10)
    run.record["sample_seconds"] = round(seconds, 1)
    return (f"denoiser.keras, decoder.keras, samples.npz ({N_SAMPLES} digits, {steps} DDIM steps, guidance "
            f"{guidance}, {seconds:.0f} s)")


def report_diffusion(folder, n, seed):
    saved = _read(folder / "samples.npz", lambda path: dict(np.load(path)))
    images, labels = saved["images"][:n], saved["labels"][:n]
    return metrics.evaluate_images(images, len(images), labels)


def sample_diffusion(folder, out, n, steps=None, guidance=None, label=None, seed=0):
    """Draw ``n`` digits from the diffusion run in ``folder`` into ``out`` (.npz: images, labels); returns
    the images, labels, steps, guidance and the seconds drawing took."""
    paths = [folder / name for name in ("denoiser.keras", "decoder.keras", "diffusion.json")]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise checks.BadArgument(f"DIR {folder} has no {' or '.join(missing)}; train a new diffusion run.")
    config = json.loads(paths[2].read_text())
    steps, guidance = steps or config["steps"], config["guidance"] if guidance is None else guidance
    if steps > config["T"]:
        raise checks.BadArgument(f"--steps {steps} is more than the {config['T']} steps the model was trained with; "
                                 f"use 1 to {config['T']}.")
    denoiser, decoder = _load(paths[0], LATENT_SHAPE, LATENT_SHAPE), _load(paths[1], LATENT_SHAPE)
    clock = time.perf_counter()
    latents, labels = diffusion.ddim_sample(denoiser, diffusion.Schedule.cosine(config["T"]), n,
                                            np.full(n, label) if label is not None else np.arange(n) % 10, steps,
                                            config["target"], guidance, seed)
    images = diffusion.decode(decoder, latents / config["latent_scale"])
    np.savez_compressed(out, images=images, labels=labels)
    return images, labels, steps, guidance, time.perf_counter() - clock


# ---------------------------------------------------------------------- the recipes


@dataclass(frozen=True)
class Recipe:
    build: Callable
    epochs: int
    batch_size: int
    help: str
    feed: Feed = IMAGES
    keys: tuple = ("d_loss", "g_loss")
    save: Callable = save_generator
    report: Callable = report_generator
    sample: Callable = None  # for the models that draw on demand (see sample_diffusion)


RECIPES = {
    "gan": Recipe(build_gan, 60, 64, "the MLP GAN of lesson 01"),
    "dcgan": Recipe(build_dcgan, 50, 32, "the DCGAN of lesson 02 (refined D, Adam 6e-4, batch 32, averaged G)"),
    "cgan": Recipe(build_cgan, 50, 32, "the conditional GAN of lesson 03 (lesson 02's recipe: refined D, Adam 6e-4, "
                   "batch 32, averaged G)", LABELLED),
    "wgan": Recipe(build_wgan, 60, 32, "the weight-clipped WGAN of lesson 04 (RMSprop 5e-5, clip 0.01)", CRITIC,
                   ("c_loss", "g_loss", "wasserstein")),
    "wgan-gp": Recipe(build_wgan_gp, 30, 32, "the WGAN-GP of lesson 04 (refined critic, Adam 5e-4, averaged G)",
                      CRITIC, ("c_loss", "g_loss", "wasserstein", "gp")),
    "cyclegan": Recipe(build_cyclegan, 20, 32, "the CycleGAN of lesson 05 (plain <-> outlined digits)", DOMAINS,
                       ("g_loss", "cycle_loss", "d_a_loss", "d_b_loss"), save_translators, report_translators),
    "pix2pix": Recipe(build_pix2pix, 20, 32, "the Pix2Pix of lesson 06 (sketch -> digit, U-Net, lambda 100)", PAIRS,
                      ("g_loss", "l1", "d_loss"), save_sketch_to_digit, report_sketch_to_digit),
    "stylegan": Recipe(build_stylegan, 35, 32, "the style-based generator of lesson 08 (mapping, modulation, noise, "
                       "mixing, R1)", keys=("d_loss", "g_loss", "r1")),
    "diffusion": Recipe(build_diffusion, 100, 128, "the latent diffusion model of lesson 09 (autoencoder to 7x7x4, "
                        "conditional U-Net, v-prediction, guidance)", LATENTS, ("loss",), save_diffusion,
                        report_diffusion, sample_diffusion),
}


def get(model):
    """The recipe named ``model``."""
    return RECIPES[checks.choice("model", model, tuple(RECIPES))]
