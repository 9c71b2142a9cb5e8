"""Headless runs: ``python -m gan_lessons train MODEL --out DIR`` and ``evaluate DIR``.

What a finished ``train`` leaves in DIR:
  generator.keras (cyclegan: generator_ab.keras, generator_ba.keras, test_domains.npz),
  samples.png, history.json (per-epoch losses and seconds) and run.json (the options).
A finished DIR is never overwritten; an unfinished one (interrupted by Ctrl-C, a crash
or a lost connection) resumes from its last finished epoch when the same command is
run again.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input: printed as one sentence, exit code 2."""


def _integer(name, minimum):
    """argparse type: an integer of at least ``minimum``, with a message naming the option."""
    kind = "a positive integer" if minimum == 1 else "a non-negative integer"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {kind}; got {text!r}.")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be {kind}; got {value}.")
        return value

    return parse


def _positive(name):
    return _integer(name, 1)


def _non_negative(name):
    return _integer(name, 0)


def build_parser(model_names, model_help):
    parser = argparse.ArgumentParser(
        prog="python -m gan_lessons",
        description="Train and evaluate the course's GANs without a notebook.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train a model and save its generator",
        description=(
            "Train MODEL on MNIST (the full set when reachable, the bundled 5,000 digits "
            "offline) and save the generator, a sample grid and the per-epoch history in "
            "DIR. A finished DIR is refused; an unfinished one (Ctrl-C, crash, disconnect) "
            "resumes from its last finished epoch."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models:\n" + "\n".join(f"  {n:<9} {h}" for n, h in model_help.items()),
    )
    train.add_argument("model", metavar="MODEL", choices=model_names,
                       help=f"which model to train: {', '.join(model_names)}")
    train.add_argument("--out", required=True, metavar="DIR", type=Path,
                       help="output folder (created; must be new, empty, or an unfinished run)")
    train.add_argument("--epochs", type=_positive("--epochs"), metavar="N",
                       help="passes over the training data (default: the model's own)")
    train.add_argument("--batch-size", type=_positive("--batch-size"), metavar="B",
                       help="images per training step (default: the model's own)")
    train.add_argument("--seed", type=_non_negative("--seed"), default=0, metavar="S",
                       help="random seed; the same seed repeats a run on the CPU (default 0)")
    train.add_argument("--quick", action="store_true",
                       help="a quick check: few epochs on little data (also set by GAN_LESSONS_QUICK=1)")

    evaluate = sub.add_parser(
        "evaluate",
        help="print a saved run's metrics as JSON",
        description="Measure the generator saved in DIR with the course's classifier and print JSON "
                    "(FID and its real-vs-real floor, KID, classes covered; label accuracy for cgan; "
                    "class kept through translation for cyclegan).",
    )
    evaluate.add_argument("dir", metavar="DIR", type=Path, help="a folder written by 'train'")
    evaluate.add_argument("--n", type=_positive("--n"), default=1000, metavar="N",
                          help="samples to draw (default 1000)")
    evaluate.add_argument("--seed", type=_non_negative("--seed"), default=0, metavar="S",
                          help="seed of the samples (default 0)")
    return parser


# ---------------------------------------------------------------------------- train


def _read_run(out):
    path = out / "run.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise UsageError(f"{path} is not readable JSON; move DIR aside and start a new run.")
    return None


def _write_run(out, run):
    tmp = out / "run.json.tmp"
    tmp.write_text(json.dumps(run, indent=1))
    tmp.replace(out / "run.json")


def _plan(args, recipe):
    """Decide between a new run and a resumed one; refuse everything else."""
    out = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder path (new, empty, or an unfinished run).")
    run = _read_run(out) if out.is_dir() else None
    if run is None:
        if out.is_dir() and any(out.iterdir()):
            raise UsageError(f"--out {out} is a non-empty folder that holds no gan_lessons run; "
                             "choose a new or empty folder.")
        return {"model": recipe.name, "epochs": args.epochs or (recipe.quick_epochs if args.quick else recipe.epochs),
                "batch_size": args.batch_size or recipe.batch_size, "seed": args.seed,
                "quick": args.quick, "status": "running"}, False
    if run.get("status") == "finished":
        raise UsageError(f"--out {out} already holds a finished {run.get('model')} run; it is left as it is. "
                         "Choose another folder to train again.")
    if run.get("model") != recipe.name:
        raise UsageError(f"--out {out} holds an unfinished {run.get('model')} run, not {recipe.name}; "
                         "resume it with the same MODEL or choose another folder.")
    for key, given in (("epochs", args.epochs), ("batch_size", args.batch_size)):
        if given is not None and given != run[key]:
            raise UsageError(f"--{key.replace('_', '-')} {given} differs from the unfinished run in {out} "
                             f"({run[key]}); resume with the same options or choose another folder.")
    if args.seed != run["seed"] or bool(args.quick) != bool(run["quick"]):
        raise UsageError(f"--seed/--quick differ from the unfinished run in {out} "
                         f"(seed {run['seed']}, quick {run['quick']}); resume with the same options.")
    return run, True


def train(args):
    from gan_lessons import recipes

    recipe = recipes.get(args.model)
    if os.environ.get("GAN_LESSONS_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}:
        args.quick = True
    run, resuming = _plan(args, recipe)
    if run["quick"]:
        os.environ["GAN_LESSONS_QUICK"] = "1"

    import gan_lessons
    from gan_lessons import callbacks, plots

    gan_lessons.set_seed(run["seed"])
    x, y = recipe.load_data(run["quick"])
    if run["batch_size"] > len(x):
        raise UsageError(f"--batch-size {run['batch_size']} is larger than the training data "
                         f"({len(x)} images); use at most {len(x)}.")
    dataset = recipe.make_dataset(x, y, run["batch_size"], run["seed"])

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        _write_run(out, run)
        recipe.prepare(out, x, y, run["seed"])
        print(f"Training {recipe.name} for {run['epochs']} epochs (batch {run['batch_size']}, "
              f"seed {run['seed']}) into {out}.")
    else:
        done = len(json.loads((out / "history.json").read_text())["epoch"]) if (out / "history.json").is_file() else 0
        print(f"Resuming the unfinished {recipe.name} run in {out} after epoch {done} of {run['epochs']}.")

    trainer = recipe.build(run["seed"])
    nan_stop = callbacks.StopOnNaN()
    cbs = [callbacks.resume(out / "backup"), callbacks.HistoryFile(out / "history.json"), nan_stop,
           callbacks.Progress(keys=list(recipe.monitor_keys))]
    start = time.perf_counter()
    try:
        trainer.fit(dataset, epochs=run["epochs"], verbose=0, callbacks=cbs)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume from the last finished epoch in {out}.")
        return EXIT_INTERRUPTED
    if nan_stop.stopped_at is not None:
        print(f"The run in {out} is not finished: {nan_stop.message}")
        return EXIT_FAILED

    recipe.save(trainer, out)
    inputs = recipe.sample_inputs(trainer, run["seed"])
    plots.save_grid_png(recipe.sample_images(trainer, inputs), out / "samples.png", rows=10)
    run["status"] = "finished"
    run["train_seconds_last_part"] = round(time.perf_counter() - start, 1)
    _write_run(out, run)
    saved = ", ".join(recipe.output_files + ("samples.png", "history.json"))
    print(f"Finished: wrote {saved} to {out}.")
    return 0


# ------------------------------------------------------------------------- evaluate


def evaluate(args):
    from gan_lessons import recipes

    run = _read_run(args.dir) if args.dir.is_dir() else None
    if run is None:
        raise UsageError(f"DIR {args.dir} holds no gan_lessons run (no run.json); give a folder written by 'train'.")
    if run.get("status") != "finished":
        raise UsageError(f"DIR {args.dir} holds an unfinished run; finish it with 'train' first.")
    recipe = recipes.get(run["model"])
    if run.get("quick"):
        os.environ["GAN_LESSONS_QUICK"] = "1"
    import gan_lessons  # noqa: F401

    result = recipe.evaluate(args.dir, n=args.n, seed=args.seed)
    result = {"model": run["model"], **result}
    print(json.dumps(result, indent=1))
    return 0


def main(argv=None):
    from gan_lessons import runtime

    runtime.quiet_logs()
    from gan_lessons import recipes

    names = list(recipes.RECIPES)
    parser = build_parser(names, {n: r.help for n, r in recipes.RECIPES.items()})
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return train(args)
        return evaluate(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as exc:  # bad values caught by the package's own checks
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
