"""The command line: ``python -m gan_lessons train MODEL --out DIR``, ``evaluate DIR`` and
``sample DIR`` (diffusion).

``train`` writes the contract files of README's "Command line" section into DIR. A finished
DIR is never overwritten; an unfinished one resumes from its last finished epoch; a run
stopped by a NaN loss is marked failed. What each MODEL trains is one small build function.
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

import gan_lessons
from gan_lessons import (callbacks, cgan, checks, cyclegan, data, diffusion, distribute, gan, metrics, pix2pix, plots,
                         runtime, stylegan, wgan)

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
LATENT_DIM, N_CRITIC = 64, 5


class UsageError(Exception):
    """Bad input to the command line: printed as one sentence, exit code 2."""


# ------------------------------------------------------------------ what MODEL trains
# Each build function takes the seed and the run's total number of steps and returns a
# compiled trainer and the callbacks it needs beyond the command line's own.


def _adam(rate=2e-4, beta_1=0.5, beta_2=0.999):
    return keras.optimizers.Adam(rate, beta_1=beta_1, beta_2=beta_2)


def _compiled(trainer, d_optimizer, g_optimizer, *extra_callbacks):
    trainer.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
    return trainer, list(extra_callbacks)


def build_gan(seed, total_steps):
    return _compiled(gan.GAN(gan.mlp_generator(LATENT_DIM), gan.mlp_discriminator(), seed=seed), _adam(), _adam())


def build_dcgan(seed, total_steps):
    trainer = gan.GAN(gan.dcgan_generator(LATENT_DIM), gan.dcgan_discriminator(refine=True), real_label=0.9,
                      seed=seed)
    return _compiled(trainer, _adam(6e-4), _adam(6e-4), callbacks.GeneratorAverage(0.999))


def build_cgan(seed, total_steps):
    trainer = cgan.ConditionalGAN(cgan.conditional_generator(LATENT_DIM), cgan.conditional_discriminator(refine=True),
                                  real_label=0.9, seed=seed)
    return _compiled(trainer, _adam(6e-4), _adam(6e-4), callbacks.GeneratorAverage(0.999))


def build_wgan(seed, total_steps):
    trainer = wgan.WGAN(gan.dcgan_generator(LATENT_DIM, 32), wgan.critic(32), n_critic=N_CRITIC,
                        clip_value=0.01, seed=seed)
    return _compiled(trainer, keras.optimizers.RMSprop(5e-5), keras.optimizers.RMSprop(5e-5))


def build_wgan_gp(seed, total_steps):
    trainer = wgan.WGAN(gan.dcgan_generator(LATENT_DIM, 32), wgan.critic(32, refine=True), n_critic=N_CRITIC,
                        gp_weight=10.0, seed=seed)
    return _compiled(trainer, _adam(5e-4, beta_2=0.9), _adam(5e-4, beta_2=0.9), callbacks.GeneratorAverage(0.999))


def build_cyclegan(seed, total_steps):
    g_ab, g_ba = (cyclegan.resnet_generator(24, 3, name=f"generator_{ab}") for ab in ("ab", "ba"))
    d_a, d_b = (cyclegan.patchgan_discriminator(32, name=f"discriminator_{a}") for a in ("a", "b"))
    trainer = cyclegan.CycleGAN(g_ab, g_ba, d_a, d_b, seed=seed)
    return _compiled(trainer, _adam(cyclegan.LinearDecay(2e-4, total_steps)),
                     _adam(cyclegan.LinearDecay(2e-4, total_steps)))


def build_pix2pix(seed, total_steps):
    trainer = pix2pix.Pix2Pix(pix2pix.unet_generator(32), pix2pix.conditional_patchgan(32), l1_weight=100.0)
    return _compiled(trainer, _adam(), _adam())


def build_stylegan(seed, total_steps):
    generator = stylegan.style_generator(stylegan.mapping_network(LATENT_DIM), stylegan.synthesis_network(seed=seed))
    trainer = stylegan.StyleGAN(generator, stylegan.discriminator(), r1_weight=0.1, seed=seed)
    trainer.compile(d_optimizer=_adam(1e-3, beta_2=0.99), g_optimizer=_adam(5e-4, beta_2=0.99),
                    mapping_optimizer=_adam(5e-6, beta_2=0.99))  # the mapping learns 100 times slower
    return trainer, [callbacks.GeneratorAverage(0.999)]


# diffusion: an autoencoder (digit -> 7x7x4) is trained first, then a conditional U-Net learns
# to denoise its latents; DDIM draws them back in SAMPLE_STEPS steps with guidance GUIDANCE.
AUTOENCODER_EPOCHS, SAMPLE_STEPS, GUIDANCE, N_SAMPLES = 10, 25, 1.5, 1000


def build_diffusion(seed, total_steps):
    trainer = diffusion.Diffusion(diffusion.unet((7, 7, 4), (64, 128)), diffusion.Schedule.cosine(1000), target="v",
                                  label_dropout=0.1, seed=seed)
    trainer.compile(keras.optimizers.Adam(1e-3))
    return trainer, [callbacks.GeneratorAverage(0.999, network="denoiser")]


@dataclass
class Spec:
    build: object
    epochs: int
    batch_size: int
    help: str
    data: str = "images"  # images, labelled, critic (n_critic batches a step), domains or pairs
    keys: tuple = ("d_loss", "g_loss")


MODELS = {
    "gan": Spec(build_gan, 60, 64, "the MLP GAN of lesson 01"),
    "dcgan": Spec(build_dcgan, 50, 32, "the DCGAN of lesson 02 (refined D, Adam 6e-4, batch 32, averaged G)"),
    "cgan": Spec(build_cgan, 50, 32, "the conditional GAN of lesson 03 (lesson 02's recipe: refined D, Adam 6e-4, "
                 "batch 32, averaged G)", "labelled"),
    "wgan": Spec(build_wgan, 60, 32, "the weight-clipped WGAN of lesson 04 (RMSprop 5e-5, clip 0.01)", "critic",
                 ("c_loss", "g_loss", "wasserstein")),
    "wgan-gp": Spec(build_wgan_gp, 30, 32, "the WGAN-GP of lesson 04 (refined critic, Adam 5e-4, averaged G)",
                    "critic", ("c_loss", "g_loss", "wasserstein", "gp")),
    "cyclegan": Spec(build_cyclegan, 20, 32, "the CycleGAN of lesson 05 (plain <-> outlined digits)", "domains",
                     ("g_loss", "cycle_loss", "d_a_loss", "d_b_loss")),
    "pix2pix": Spec(build_pix2pix, 20, 32, "the Pix2Pix of lesson 06 (sketch -> digit, U-Net, lambda 100)", "pairs",
                    ("g_loss", "l1", "d_loss")),
    "stylegan": Spec(build_stylegan, 35, 32, "the style-based generator of lesson 08 (mapping, modulation, noise, "
                     "mixing, R1)", keys=("d_loss", "g_loss", "r1")),
    "diffusion": Spec(build_diffusion, 100, 128, "the latent diffusion model of lesson 09 (autoencoder to 7x7x4, "
                      "conditional U-Net, v-prediction, guidance)", "latent", ("loss",)),
}
TEST_FILES = {"domains": "test_domains.npz", "pairs": "test_pairs.npz"}
QUICK_EPOCHS, QUICK_DIGITS = 1, 512


def _load_data(spec, batch_size, seed, quick, source="auto"):
    """(dataset, steps per epoch) and the held-out domains or pairs, from the run's MNIST ``source``."""
    if spec.data == "pairs":
        train, test = (pix2pix.load_pairs(split, limit=limit, source=source, verbose=False) for split, limit in
                       zip(("train", "test"), (QUICK_DIGITS, QUICK_DIGITS // 2) if quick else (None, 1000)))
        x, y, size = train.inputs, train.targets, len(train)
    elif spec.data == "domains":
        limits = (QUICK_DIGITS // 2, QUICK_DIGITS // 2) if quick else (4000, 1000)
        train, test = (cyclegan.load_digit_domains(split, limit=limit, source=source, verbose=False)
                       for split, limit in zip(("train", "test"), limits))
        size = len(train)
    else:
        x, y = data.load_mnist("train", source=source, limit=QUICK_DIGITS if quick else None)
        test, size = None, len(x)
    if batch_size > size:
        raise UsageError(f"--batch-size {batch_size} is larger than the training data ({size} images); "
                         f"use at most {size}.")
    if spec.data == "domains":
        return data.make_unpaired_dataset(train.a, train.b, batch_size, seed), test
    if spec.data == "latent":
        return ((x, y), size // batch_size), None
    per_step = N_CRITIC if spec.data == "critic" else None
    return data.make_dataset(x, y if spec.data in ("labelled", "pairs") else None, batch_size, seed, per_step), test


# ------------------------------------------------------------------------ run.json

RUN_KEYS = {"model": str, "epochs": int, "batch_size": int, "seed": int, "quick": bool, "status": str}
STATUSES = ("running", "finished", "failed")


def _read_run(out):
    """The run record in ``out``, checked, or None when there is none."""
    path = out / "run.json"
    if not path.is_file():
        return None
    try:
        run = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{path} is not readable JSON; move the folder aside and start a new run.") from None
    bad = [k for k, kind in RUN_KEYS.items() if not isinstance(run, dict) or type(run.get(k)) is not kind]
    if not bad:
        bad = [k for k, ok in (("model", run["model"] in MODELS), ("epochs", run["epochs"] >= 1),
                               ("batch_size", run["batch_size"] >= 1), ("seed", run["seed"] >= 0),
                               ("status", run["status"] in STATUSES)) if not ok]
    if bad:
        raise UsageError(f"{path} is not a gan_lessons run record (bad or missing: {', '.join(bad)}); "
                         "move the folder aside and start a new run.")
    return run


def _write_run(out, run):
    tmp = out / "run.json.tmp"
    tmp.write_text(json.dumps(run, indent=1))
    tmp.replace(out / "run.json")


def _plan(args):
    """A new run, or the unfinished run in --out to resume; everything else is refused."""
    out, spec = args.out, MODELS[args.model]
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (new, empty, or an unfinished run).")
    run = _read_run(out) if out.is_dir() else None
    if run is None:
        if out.is_dir() and any(out.iterdir()):
            raise UsageError(f"--out {out} is a non-empty folder that holds no gan_lessons run; "
                             "choose a new or empty folder.")
        epochs = args.epochs or (QUICK_EPOCHS if args.quick else spec.epochs)
        return {"model": args.model, "epochs": epochs, "batch_size": args.batch_size or spec.batch_size,
                "seed": args.seed or 0, "quick": bool(args.quick), "source": data.mnist_source(),
                "status": "running"}, False
    if run["status"] == "finished":
        raise UsageError(f"--out {out} already holds a finished {run['model']} run; it is left as it is. "
                         "Choose another folder to train again.")
    if run["status"] == "failed":
        raise UsageError(f"--out {out} holds a {run['model']} run that failed ({run.get('failure', 'no reason kept')}) "
                         "and cannot be resumed; start a new run in another folder.")
    if run["model"] != args.model:
        raise UsageError(f"--out {out} holds an unfinished {run['model']} run, not {args.model}; "
                         "resume it with the same MODEL or choose another folder.")
    for key in ("epochs", "batch_size", "seed"):
        value = getattr(args, key)
        if value is not None and value != run[key]:
            raise UsageError(f"--{key.replace('_', '-')} {value} differs from the unfinished run in {out} "
                             f"({key} {run[key]}); resume with the same options or choose another folder.")
    if bool(args.quick) != run["quick"]:
        given = "--quick (or GAN_LESSONS_QUICK=1) is" if args.quick else "neither --quick nor GAN_LESSONS_QUICK=1 is"
        raise UsageError(f"{given} given, but the unfinished run in {out} is a {'quick' if run['quick'] else 'full'} "
                         "run; resume it the way it was started.")
    return run, True


# --------------------------------------------------------------------------- train


def _sample_grid(generator, run, test):
    """samples.png's images from the saved ``generator`` (cyclegan: the pair A->B, B->A):
    100 digits (cgan: a row per class); cyclegan: one row per example, A, A->B, A->B->A,
    style(A), B, B->A, B->A->B; pix2pix: input, output, truth."""
    if isinstance(test, pix2pix.Pairs):
        pairs = test.head(30)
        return np.stack([pairs.inputs, metrics.generate(generator, pairs.inputs), pairs.targets],
                        axis=1).reshape((-1, 28, 28, 1))
    if test is not None:
        (g_ab, g_ba), a, b = generator, test.a[:10], test.b[:10]
        fake_b, fake_a = metrics.generate(g_ab, a), metrics.generate(g_ba, b)
        columns = [a, fake_b, metrics.generate(g_ba, fake_b), cyclegan.style(a),
                   b, fake_a, metrics.generate(g_ab, fake_a)]
        return np.stack(columns, axis=1).reshape((-1, 28, 28, 1))
    noise = np.random.default_rng(run["seed"] + 1).standard_normal((100, LATENT_DIM)).astype("float32")
    if len(generator.inputs) == 2:
        return metrics.generate(generator, [noise, np.repeat(np.arange(10), 10)])
    return metrics.generate(generator, noise)


def _save(model, path):
    """Save ``model``; from a mixed-precision run, as a float32 copy (float32 images anywhere).
    Returns the model saved, for the samples drawn after training."""
    if keras.config.dtype_policy().name != "float32":
        model = distribute.float32_copy(model)
    model.save(path)
    return model


def train(args):
    run, resuming = _plan(args)
    recorded = run.get("precision", "float32")
    previous = keras.config.dtype_policy()
    try:
        precision = distribute.set_precision(args.precision or (recorded if resuming else "float32"))
        if resuming and precision != recorded:
            given = args.precision + ("" if args.precision == precision else f" (here {precision})")
            raise UsageError(f"--precision {given} differs from the unfinished run in {args.out} (precision "
                             f"{recorded}); resume with the same precision or choose another folder.")
        if precision == "mixed_float16" and not runtime.has_gpu():
            print("Note: mixed_float16 on a CPU is much slower than float32; it pays on GPUs with tensor cores.")
        run["precision"] = precision
        return _train(args, run, resuming)
    finally:
        keras.config.set_dtype_policy(previous)  # build later models as before


def _train(args, run, resuming):
    spec = MODELS[run["model"]]
    strategy, where = distribute.make_strategy(args.strategy)
    distribute.check_batch(run["batch_size"], strategy)
    gan_lessons.set_seed(run["seed"])
    (dataset, steps), test = _load_data(spec, run["batch_size"], run["seed"], run["quick"], run.get("source", "auto"))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if resuming:
        history = out / "history.json"
        done = len(json.loads(history.read_text())["epoch"]) if history.is_file() else 0
        print(f"Resuming the unfinished {run['model']} run in {out} after epoch {done} of {run['epochs']}.")
    else:
        _write_run(out, run)
        if test is not None:
            test.save(out / TEST_FILES[spec.data])
        print(f"Training {run['model']} for {run['epochs']} epochs (batch {run['batch_size']}, "
              f"seed {run['seed']}) into {out}.")
    print(f"Devices: {where}; precision {run['precision']}.")

    try:
        # Networks, optimizers and training under the strategy: on several devices each step's
        # batch is split over the replicas (a WGAN's stacked batches along their second axis).
        with strategy.scope():
            if spec.data == "latent":
                dataset = _latents(out, run, *dataset)
            trainer, extra = spec.build(run["seed"], run["epochs"] * steps)
            dataset = distribute.split_dataset(dataset, strategy, batch_axis=1 if spec.data == "critic" else 0)
            nan_stop = callbacks.StopOnNaN()
            own = [callbacks.resume(out / "backup"), callbacks.HistoryFile(out / "history.json"), nan_stop,
                   callbacks.Progress(keys=list(spec.keys))]
            start = time.perf_counter()
            trainer.fit(dataset, epochs=run["epochs"], steps_per_epoch=steps, verbose=0, callbacks=extra + own)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume from the last finished epoch in {out}.")
        return EXIT_INTERRUPTED
    if nan_stop.stopped_at is not None:
        run.update(status="failed", failure=nan_stop.message)
        _write_run(out, run)
        print(f"The run in {out} failed and is marked so; start a new run in another folder.")
        return EXIT_FAILED

    if spec.data == "domains":
        saved = (_save(trainer.generator_ab, out / "generator_ab.keras"),
                 _save(trainer.generator_ba, out / "generator_ba.keras"))
    elif spec.data == "latent":
        return _finish_diffusion(trainer, out, run, start)
    else:
        saved = _save(getattr(trainer, "generator_average", trainer.generator), out / "generator.keras")
    plots.save_grid_png(_sample_grid(saved, run, test), out / "samples.png", rows=10)
    run.update(status="finished", train_seconds_last_part=round(time.perf_counter() - start, 1))
    _write_run(out, run)
    print(f"Finished: wrote the generator, samples.png and history.json to {out}.")
    return 0


# ----------------------------------------------------------------------- diffusion


def _latents(out, run, x, y):
    """The diffusion run's first part: train the autoencoder (or load it when a resumed run has
    it), write diffusion.json, and return the dataset of scaled latents and labels."""
    paths = [out / "encoder.keras", out / "decoder.keras"]
    if all(p.is_file() for p in paths):
        encoder, decoder = (metrics.single_input(keras.saving.load_model(p, compile=False)) for p in paths)
    else:
        epochs = QUICK_EPOCHS if run["quick"] else AUTOENCODER_EPOCHS
        print(f"Part 1: the autoencoder (28x28x1 -> 7x7x4 -> 28x28x1), {epochs} epochs.")
        encoder, decoder = diffusion.autoencoder(4)
        start = time.perf_counter()
        diffusion.train_autoencoder(encoder, decoder, x, epochs=epochs, batch_size=64,
                                    callbacks=[callbacks.Progress(keys=["loss"])])
        run["autoencoder_seconds"] = round(time.perf_counter() - start, 1)
        _write_run(out, run)
        for model, path in zip((encoder, decoder), paths):
            _save(model, path)
    latents = diffusion.encode(encoder, x)
    scale = float(1.0 / latents.std())  # latents of spread 1, as the noise they are mixed with
    reconstruction = float(np.mean(np.abs(diffusion.decode(decoder, latents[:1000]) - x[:1000])))
    config = {"schedule": "cosine", "T": 1000, "target": "v", "latent_scale": scale, "latent_shape": [7, 7, 4],
              "steps": 2 if run["quick"] else SAMPLE_STEPS, "guidance": GUIDANCE,
              "autoencoder_l1": round(reconstruction, 4)}
    (out / "diffusion.json").write_text(json.dumps(config, indent=1))
    print(f"Autoencoder: mean absolute reconstruction error {reconstruction:.3f} on training digits. "
          "Part 2: the denoiser on its latents.")
    dataset, _ = data.make_dataset((latents * scale).astype(np.float32), y, run["batch_size"], run["seed"])
    return dataset


def _draw(denoiser, decoder, config, n, steps, guidance, labels=None, seed=0):
    """Digits from a diffusion run: DDIM in latent space, then the decoder. Returns (images, labels)."""
    schedule = diffusion.Schedule.cosine(config["T"])
    latents, labels = diffusion.ddim_sample(denoiser, schedule, n, labels, steps, config["target"], guidance, seed)
    return diffusion.decode(decoder, latents / config["latent_scale"]), labels


def _finish_diffusion(trainer, out, run, start):
    denoiser = _save(trainer.denoiser_average, out / "denoiser.keras")
    config = json.loads((out / "diffusion.json").read_text())
    decoder = metrics.single_input(keras.saving.load_model(out / "decoder.keras", compile=False))
    clock = time.perf_counter()
    images, labels = _draw(denoiser, decoder, config, N_SAMPLES, config["steps"], config["guidance"],
                           np.arange(N_SAMPLES) % 10, run["seed"])
    np.savez_compressed(out / "samples.npz", images=images, labels=labels)
    grid = np.concatenate([images[labels == c][:10] for c in range(10)])
    plots.save_grid_png(grid, out / "samples.png", rows=10)
    run.update(status="finished", train_seconds_last_part=round(clock - start, 1),
               sample_seconds=round(time.perf_counter() - clock, 1))
    _write_run(out, run)
    print(f"Finished: wrote denoiser.keras, decoder.keras, samples.npz ({N_SAMPLES} digits, {config['steps']} DDIM "
          f"steps, guidance {config['guidance']}, {run['sample_seconds']:.0f} s), samples.png and history.json "
          f"to {out}.")
    return 0


def _finished_run(folder, what):
    run = _read_run(folder) if folder.is_dir() else None
    if run is None:
        raise UsageError(f"DIR {folder} holds no gan_lessons run (no run.json); give a folder written by 'train'.")
    if run["status"] != "finished":
        raise UsageError(f"DIR {folder} holds a run that failed ({run.get('failure')}); train a new one in another "
                         "folder." if run["status"] == "failed" else f"DIR {folder} holds an unfinished run; "
                         f"finish it with the same 'train' command before you {what} it.")
    return run


def sample(args):
    run = _finished_run(args.dir, "sample from")
    if run["model"] != "diffusion":
        raise UsageError(f"DIR {args.dir} holds a {run['model']} run; 'sample' draws from a diffusion run "
                         "(its generator is used by 'evaluate').")
    paths = [args.dir / name for name in ("denoiser.keras", "decoder.keras", "diffusion.json")]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"DIR {args.dir} has no {' or '.join(missing)}; train a new diffusion run.")
    config = json.loads(paths[2].read_text())
    steps = args.steps or config["steps"]
    if steps > config["T"]:
        raise UsageError(f"--steps {steps} is more than the {config['T']} steps the model was trained with; "
                         f"use 1 to {config['T']}.")
    guidance = config["guidance"] if args.guidance is None else args.guidance
    labels = np.full(args.n, args.label) if args.label is not None else np.arange(args.n) % 10
    denoiser, decoder = (_load(p) for p in paths[:2])
    clock = time.perf_counter()
    images, labels = _draw(denoiser, decoder, config, args.n, steps, guidance, labels, args.seed)
    np.savez_compressed(args.out, images=images, labels=labels)
    print(f"Drew {args.n} digits ({steps} DDIM steps, guidance {guidance}, seed {args.seed}) in "
          f"{time.perf_counter() - clock:.1f} s into {args.out}.")
    return 0


# ------------------------------------------------------------------------ evaluate


def _load(path):
    try:
        return metrics.single_input(keras.saving.load_model(path, compile=False))
    except Exception as exc:  # Keras's message can run to pages: keep its first sentence
        first = str(exc).strip().split("\n")[0].split(". ")[0].rstrip(".")
        raise UsageError(f"{path} could not be loaded: {first}.") from None


def evaluate(args):
    run = _finished_run(args.dir, "evaluate")
    metrics.load_classifier(verbose=False, quick=run["quick"])  # stdout stays pure JSON
    spec = MODELS[run["model"]]
    if spec.data in TEST_FILES:
        path = args.dir / TEST_FILES[spec.data]
        try:
            test = (cyclegan.UnpairedDomains if spec.data == "domains" else pix2pix.Pairs).load(path).head(args.n)
        except (OSError, KeyError, ValueError) as exc:
            raise UsageError(f"{path} could not be read ({exc}).") from None
    if spec.data == "domains":
        g_ab, g_ba = _load(args.dir / "generator_ab.keras"), _load(args.dir / "generator_ba.keras")
        report = cyclegan.translation_report(g_ab, g_ba, test)
        # How real the B -> A digits look: their FID against the held-out A digits, plain digits
        # that none of the B digits was made from.
        fid_b_to_a = metrics.fid(metrics.features(metrics.generate(g_ba, test.b)), metrics.features(test.a))
        result = {"n_a": len(test.a), "n_b": len(test.b), **report, "fid_b_to_a": fid_b_to_a,
                  "fid_floor": metrics.fid_floor(len(test.b))}
    elif spec.data == "pairs":
        result = {"n": len(test), **pix2pix.translation_report(_load(args.dir / "generator.keras"), test.inputs,
                                                               test.targets, test.labels)}
    elif spec.data == "latent":
        path = args.dir / "samples.npz"
        try:
            with np.load(path) as saved:
                images, labels = saved["images"][:args.n], saved["labels"][:args.n]
        except (OSError, KeyError, ValueError) as exc:
            raise UsageError(f"{path} could not be read ({exc}).") from None
        result = metrics.evaluate_images(images, len(images), labels)
    else:
        result = metrics.evaluate_generator(_load(args.dir / "generator.keras"), n=args.n, seed=args.seed)
    print(json.dumps({"model": run["model"], **result}, indent=1))
    return 0


# ---------------------------------------------------------------------------- main


def _count(option, minimum):
    """argparse type: an integer of at least ``minimum``, the message naming the option."""
    def parse(text):
        try:
            return checks.count(option, int(text) if text.lstrip("-").isdigit() else text, minimum)
        except checks.BadArgument as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m gan_lessons",
                                     description="Train, evaluate and sample the course's models without a notebook.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train_parser = sub.add_parser(
        "train", help="train a model and save its generator", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train MODEL on MNIST (the full set when reachable, the bundled 5,000 digits offline) and "
                    "save the generator, a sample grid and the per-epoch history in DIR. A finished DIR is "
                    "refused; an unfinished one (Ctrl-C, crash, disconnect) resumes from its last finished epoch.",
        epilog="models:\n" + "\n".join(f"  {name:<9} {spec.help}" for name, spec in MODELS.items()))
    train_parser.add_argument("model", metavar="MODEL", choices=list(MODELS),
                              help=f"which model to train: {', '.join(MODELS)}")
    train_parser.add_argument("--out", required=True, metavar="DIR", type=Path,
                              help="output folder (created; must be new, empty, or an unfinished run)")
    train_parser.add_argument("--epochs", type=_count("--epochs", 1), metavar="N",
                              help="passes over the training data (default: the model's own)")
    train_parser.add_argument("--batch-size", type=_count("--batch-size", 1), metavar="B",
                              help="images per training step; for wgan and wgan-gp, per critic step "
                                   "(default: the model's own)")
    train_parser.add_argument("--seed", type=_count("--seed", 0), metavar="S",
                              help="random seed; the same seed repeats a run on the CPU (default 0)")
    train_parser.add_argument("--strategy", choices=distribute.STRATEGIES, default="auto",
                              help="devices to train on: auto (all GPUs when there are two or more, else one "
                                   "device), one, mirrored (several GPUs), tpu, multi-worker (machines in "
                                   "TF_CONFIG); --batch-size is the global batch, split over the replicas "
                                   "(default auto)")
    train_parser.add_argument("--precision", choices=distribute.PRECISIONS, metavar="P",
                              help="float32 (the default), mixed_float16 (GPUs with tensor cores: float16 "
                                   "arithmetic, float32 weights and losses, loss scaling), mixed_bfloat16, or auto "
                                   "(mixed_float16 on such GPUs, else float32); generators are saved in float32")
    train_parser.add_argument("--quick", action="store_const", const=True,
                              help="a quick check: one epoch on little data (also set by GAN_LESSONS_QUICK=1)")
    evaluate_parser = sub.add_parser(
        "evaluate", help="print a saved run's metrics as JSON",
        description="Measure the generator saved in DIR with the course's classifier and print JSON: FID, its "
                    "floor, KID, IS, precision, recall, density, coverage, copying ratio, classes covered "
                    "(label accuracy for cgan and diffusion; class kept through translation for cyclegan). "
                    "A diffusion run is measured on the digits it saved in samples.npz.")
    evaluate_parser.add_argument("dir", metavar="DIR", type=Path, help="a folder written by 'train'")
    evaluate_parser.add_argument("--n", type=_count("--n", 10), default=1000, metavar="N",
                                 help="samples to draw (default 1000)")
    evaluate_parser.add_argument("--seed", type=_count("--seed", 0), default=0, metavar="S",
                                 help="seed of the samples (default 0; diffusion: the first N of samples.npz)")
    sample_parser = sub.add_parser(
        "sample", help="draw digits from a diffusion run",
        description="Draw N digits from the diffusion model saved in DIR (DDIM in its latent space, then the "
                    "decoder) and save them as FILE.npz with arrays images (N, 28, 28, 1) in [-1, 1] and labels.")
    sample_parser.add_argument("dir", metavar="DIR", type=Path, help="a folder written by 'train diffusion'")
    sample_parser.add_argument("--n", type=_count("--n", 1), default=N_SAMPLES, metavar="N",
                               help=f"digits to draw (default {N_SAMPLES}, the classes in turn)")
    sample_parser.add_argument("--steps", type=_count("--steps", 1), metavar="S",
                               help=f"DDIM steps, 1 to the trained T (default {SAMPLE_STEPS})")
    sample_parser.add_argument("--guidance", type=_guidance, metavar="W",
                               help=f"classifier-free guidance scale, 0 or more: 0 ignores the label, 1 is the "
                                    f"plain conditional model (default {GUIDANCE})")
    sample_parser.add_argument("--label", type=_label, metavar="L", help="draw only digit L, 0-9 (default: all)")
    sample_parser.add_argument("--seed", type=_count("--seed", 0), default=0, metavar="S",
                               help="seed of the starting noise (default 0)")
    sample_parser.add_argument("--out", required=True, type=Path, metavar="FILE.npz", help="where to save the digits")
    return parser


def _guidance(text):
    try:
        return diffusion.check_guidance(float(text))
    except (ValueError, checks.BadArgument):
        raise argparse.ArgumentTypeError(f"--guidance must be a number of 0 or more; got {text!r}.") from None


def _label(text):
    if text.strip().isdigit() and 0 <= int(text) <= 9:
        return int(text)
    raise argparse.ArgumentTypeError(f"--label must be a digit class from 0 to 9; got {text!r}.")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "train" and runtime.is_quick():
        args.quick = True  # the environment's quick switch, read once here
    try:
        return {"train": train, "evaluate": evaluate, "sample": sample}[args.command](args)
    except (UsageError, checks.BadArgument, data.DatasetUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
