"""The command line: ``python -m gan_lessons train MODEL --out DIR``, ``evaluate DIR`` and
``sample DIR`` (diffusion), handed to ``runs.train``, ``runs.evaluate`` and ``runs.sample``.
Bad input is one sentence on stderr and exit status 2, with nothing written.
"""

import argparse
import json
import sys
from pathlib import Path

from gan_lessons import callbacks, checks, data, diffusion, distribute, runs, runtime
from gan_lessons.recipes import GUIDANCE, N_SAMPLES, RECIPES, SAMPLE_STEPS

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


def _count(option, minimum):
    """argparse type: an integer of at least ``minimum``, the message naming the option."""
    def parse(text):
        try:
            return checks.count(option, int(text) if text.lstrip("-").isdigit() else text, minimum)
        except checks.BadArgument as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _guidance(text):
    try:
        return diffusion.check_guidance(float(text))
    except (ValueError, checks.BadArgument):
        raise argparse.ArgumentTypeError(f"--guidance must be a number of 0 or more; got {text!r}.") from None


def _label(text):
    if text.strip().isdigit() and 0 <= int(text) <= 9:
        return int(text)
    raise argparse.ArgumentTypeError(f"--label must be a digit class from 0 to 9; got {text!r}.")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """A bad argument: one sentence on stderr and exit status 2, as for all bad input."""
        self.exit(EXIT_BAD_INPUT, f"error: {message}{'' if message.endswith('.') else '.'}\n")


def build_parser():
    parser = _Parser(prog="python -m gan_lessons",
                     description="Train, evaluate and sample the course's models without a notebook.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = sub.add_parser(
        "train", help="train a model and save its generator", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train MODEL on MNIST (the full set when reachable, the bundled 5,000 digits offline) and "
                    "save the generator, a sample grid and the per-epoch history in DIR. A finished DIR is "
                    "refused; an unfinished one (Ctrl-C, crash, disconnect) resumes from its last finished epoch.",
        epilog="models:\n" + "\n".join(f"  {name:<9} {recipe.help}" for name, recipe in RECIPES.items()))
    command.add_argument("model", metavar="MODEL", choices=list(RECIPES),
                         help=f"which model to train: {', '.join(RECIPES)}")
    command.add_argument("--out", required=True, metavar="DIR", type=Path,
                         help="output folder (created; must be new, empty, or an unfinished run)")
    command.add_argument("--epochs", type=_count("--epochs", 1), metavar="N",
                         help="passes over the training data (default: the model's own)")
    command.add_argument("--batch-size", type=_count("--batch-size", 1), metavar="B",
                         help="images per training step; for wgan and wgan-gp, per critic step (default: the "
                              "model's own)")
    command.add_argument("--seed", type=_count("--seed", 0), metavar="S",
                         help="random seed; the same seed repeats a run on the CPU (default 0)")
    command.add_argument("--strategy", choices=distribute.STRATEGIES, default="auto",
                         help="devices to train on: auto (all GPUs when there are two or more, else one device), "
                              "one, mirrored (several GPUs), tpu, multi-worker (machines in TF_CONFIG); "
                              "--batch-size is the global batch, split over the replicas (default auto)")
    command.add_argument("--precision", choices=distribute.PRECISIONS, metavar="P",
                         help="float32 (the default), mixed_float16 (GPUs with tensor cores: float16 arithmetic, "
                              "float32 weights and losses, loss scaling), mixed_bfloat16, or auto (mixed_float16 "
                              "on such GPUs, else float32); generators are saved in float32")
    command.add_argument("--quick", action="store_true",
                         help="a quick check: one epoch on little data (also set by GAN_LESSONS_QUICK=1)")
    command = sub.add_parser(
        "evaluate", help="print a saved run's metrics as JSON",
        description="Measure the generator saved in DIR with the course's classifier and print JSON: FID, its "
                    "floor, KID, IS, precision, recall, density, coverage, copying ratio, classes covered "
                    "(label accuracy for cgan and diffusion; class kept through translation for cyclegan). "
                    "A diffusion run is measured on the digits it saved in samples.npz.")
    command.add_argument("dir", metavar="DIR", type=Path, help="a folder written by 'train'")
    command.add_argument("--n", type=_count("--n", 10), default=1000, metavar="N",
                         help="samples to draw (default 1000)")
    command.add_argument("--seed", type=_count("--seed", 0), default=0, metavar="S",
                         help="seed of the samples (default 0; diffusion: the first N of samples.npz)")
    command = sub.add_parser(
        "sample", help="draw digits from a diffusion run",
        description="Draw N digits from the diffusion model saved in DIR (DDIM in its latent space, then the "
                    "decoder) and save them as FILE.npz with arrays images (N, 28, 28, 1) in [-1, 1] and labels.")
    command.add_argument("dir", metavar="DIR", type=Path, help="a folder written by 'train diffusion'")
    command.add_argument("--n", type=_count("--n", 1), default=N_SAMPLES, metavar="N",
                         help=f"digits to draw (default {N_SAMPLES}, the classes in turn)")
    command.add_argument("--steps", type=_count("--steps", 1), metavar="S",
                         help=f"DDIM steps, 1 to the trained T (default {SAMPLE_STEPS})")
    command.add_argument("--guidance", type=_guidance, metavar="W",
                         help=f"classifier-free guidance scale, 0 or more: 0 ignores the label, 1 is the plain "
                              f"conditional model (default {GUIDANCE})")
    command.add_argument("--label", type=_label, metavar="L", help="draw only digit L, 0-9 (default: all)")
    command.add_argument("--seed", type=_count("--seed", 0), default=0, metavar="S",
                         help="seed of the starting noise (default 0)")
    command.add_argument("--out", required=True, type=Path, metavar="FILE.npz", help="where to save the digits")
    return parser


def main(argv=None):
    """Run the command line with ``argv`` (default: sys.argv); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            if args.precision == "mixed_float16" and not runtime.has_gpu():
                raise checks.BadArgument("--precision mixed_float16 needs a GPU: a CPU emulates float16 arithmetic, "
                                         "much slower than float32; train in float32 here (the default).")
            run = runs.train(args.model, args.out, args.epochs, args.batch_size, args.seed, args.quick, args.strategy,
                             args.precision)
            return 0 if run["status"] == "finished" else EXIT_FAILED
        if args.command == "evaluate":
            print(json.dumps(runs.evaluate(args.dir, args.n, args.seed), indent=1))  # stdout stays pure JSON
        else:
            runs.sample(args.dir, args.out, args.n, args.steps, args.guidance, args.label, args.seed)
        return 0
    except (checks.BadArgument, data.DatasetUnavailable, callbacks.BackupRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # runs.train has said how to resume
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
