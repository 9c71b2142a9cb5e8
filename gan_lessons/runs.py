"""A training run's folder, the command line's memory: ``train`` a recipe (``recipes``) into it,
``evaluate`` it, ``sample`` from it. ``run.json`` records what was asked for and how it went (running,
finished, or failed: a NaN loss, never resumed); ``history.json`` each finished epoch; ``backup/`` the
checkpoint an unfinished run resumes from. A refusal is one sentence, given before anything is written.
"""

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from gan_lessons import callbacks, checks, data, distribute, metrics, recipes, runtime

FIELDS = {"model": str, "epochs": int, "batch_size": int, "seed": int, "quick": bool, "status": str}
STATUSES = ("running", "finished", "failed")


@dataclass
class Run:
    """A run folder and its record (what run.json holds)."""

    folder: Path
    record: dict

    def __getitem__(self, key):
        return self.record[key]

    def save(self, **changes):
        """Update the record and write run.json whole (a crash leaves the old file or the new one)."""
        self.record.update(changes)
        tmp = self.folder / "run.json.tmp"
        tmp.write_text(json.dumps(self.record, indent=1))
        tmp.replace(self.folder / "run.json")

    def epochs_done(self):
        path = self.folder / "history.json"
        return len(json.loads(path.read_text())["epoch"]) if path.is_file() else 0

    def callbacks(self, keys):
        """``fit``'s callbacks: checkpoint, history.json, the NaN stop (``self.nan_stop``), progress of ``keys``."""
        self.nan_stop = callbacks.StopOnNaN()
        return [callbacks.resume(self.folder / "backup"), callbacks.HistoryFile(self.folder / "history.json"),
                self.nan_stop, callbacks.Progress(keys=list(keys))]


def read(folder):
    """The run recorded in ``folder``, checked, or None when the folder holds no run.json."""
    path = Path(folder) / "run.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise checks.BadArgument(f"{path} is not readable JSON; move the folder aside and start a new run.") from None
    bad = [k for k, kind in FIELDS.items() if not isinstance(record, dict) or type(record.get(k)) is not kind]
    if not bad:
        bad = [k for k, ok in (("model", record["model"] in recipes.RECIPES), ("epochs", record["epochs"] >= 1),
                               ("batch_size", record["batch_size"] >= 1), ("seed", record["seed"] >= 0),
                               ("status", record["status"] in STATUSES)) if not ok]
    if bad:
        raise checks.BadArgument(f"{path} is not a gan_lessons run record (bad or missing: {', '.join(bad)}); "
                                 "move the folder aside and start a new run.")
    return Run(Path(folder), record)


def finished(folder, what="evaluate"):
    """The finished run in ``folder``; any other folder is refused, saying what to do."""
    run = read(folder) if Path(folder).is_dir() else None
    if run is None:
        raise checks.BadArgument(f"DIR {folder} holds no gan_lessons run (no run.json); give a folder written "
                                 "by 'train'.")
    if run["status"] == "failed":
        raise checks.BadArgument(f"DIR {folder} holds a run that failed ({run.record.get('failure')}); train a new "
                                 "one in another folder.")
    if run["status"] != "finished":
        raise checks.BadArgument(f"DIR {folder} holds an unfinished run; finish it with the same 'train' command "
                                 f"before you {what} it.")
    return run


def _start(model, folder, quick, options):
    """A new run in ``folder`` (and False), or the unfinished run there to resume (and True)."""
    if folder.exists() and not folder.is_dir():
        raise checks.BadArgument(f"--out {folder} is a file; give a folder (new, empty, or an unfinished run).")
    run = read(folder) if folder.is_dir() else None
    if run is None:
        if folder.is_dir() and any(folder.iterdir()):
            raise checks.BadArgument(f"--out {folder} is a non-empty folder that holds no gan_lessons run; "
                                     "choose a new or empty folder.")
        recipe = recipes.RECIPES[model]
        record = {"model": model, "epochs": options["epochs"] or (recipes.QUICK_EPOCHS if quick else recipe.epochs),
                  "batch_size": options["batch_size"] or recipe.batch_size, "seed": options["seed"] or 0,
                  "quick": quick, "source": data.mnist_source(), "status": "running"}
        return Run(folder, record), False
    if run["status"] == "finished":
        raise checks.BadArgument(f"--out {folder} already holds a finished {run['model']} run; it is left as it is. "
                                 "Choose another folder to train again.")
    if run["status"] == "failed":
        raise checks.BadArgument(f"--out {folder} holds a {run['model']} run that failed "
                                 f"({run.record.get('failure', 'no reason kept')}) and cannot be resumed; start a new "
                                 "run in another folder.")
    if run["model"] != model:
        raise checks.BadArgument(f"--out {folder} holds an unfinished {run['model']} run, not {model}; resume it "
                                 "with the same MODEL or choose another folder.")
    for key, value in options.items():
        if value is not None and value != run[key]:
            raise checks.BadArgument(f"--{key.replace('_', '-')} {value} differs from the unfinished run in {folder} "
                                     f"({key} {run[key]}); resume with the same options or choose another folder.")
    if quick != run["quick"]:
        given = "--quick (or GAN_LESSONS_QUICK=1) is" if quick else "neither --quick nor GAN_LESSONS_QUICK=1 is"
        raise checks.BadArgument(f"{given} given, but the unfinished run in {folder} is a "
                                 f"{'quick' if run['quick'] else 'full'} run; resume it the way it was started.")
    return run, True


def train(model, folder, epochs=None, batch_size=None, seed=None, quick=False, strategy="auto", precision=None):
    """Train the recipe ``model`` into ``folder``, or resume the unfinished run there; returns the Run,
    finished or failed (a NaN loss). None options: the recipe's defaults (seed 0) or the unfinished run's.
    Interrupted, it says how to resume and raises KeyboardInterrupt; the same call again resumes. A multi-worker
    cluster's chief writes ``folder``; the other workers train beside it in a temporary folder, then delete it."""
    recipes.get(model)
    options = {"epochs": epochs, "batch_size": batch_size, "seed": seed}
    for key, value in options.items():
        if value is not None:
            checks.count(key, value, 0 if key == "seed" else 1)
    scratch = strategy == "multi-worker" and not distribute.is_chief()
    if scratch:
        print(f"Not the chief: training beside it, which writes {folder}; this worker keeps nothing.")
        folder = tempfile.mkdtemp(prefix="gan-lessons-worker-")
    run, resuming = _start(model, Path(folder), bool(quick) or runtime.is_quick(), options)
    recorded = run.record.get("precision", "float32")
    previous = keras.config.dtype_policy()
    try:
        chosen = distribute.set_precision(precision or (recorded if resuming else "float32"))
        if resuming and chosen != recorded:
            given = precision + ("" if precision == chosen else f" (here {chosen})")
            raise checks.BadArgument(f"--precision {given} differs from the unfinished run in {folder} (precision "
                                     f"{recorded}); resume with the same precision or choose another folder.")
        if chosen == "mixed_float16" and not runtime.has_gpu():
            print("Note: mixed_float16 on a CPU is much slower than float32; it pays on GPUs with tensor cores.")
        run.record["precision"] = chosen
        return _train(run, resuming, strategy)
    finally:
        keras.config.set_dtype_policy(previous)  # build later models as before
        if scratch:
            shutil.rmtree(folder, ignore_errors=True)


def _train(run, resuming, strategy):
    recipe, folder = recipes.RECIPES[run["model"]], run.folder
    strategy, where = distribute.make_strategy(strategy)
    distribute.check_batch(run["batch_size"], strategy)
    runtime.set_seed(run["seed"])
    train_data, held_out, size = recipe.feed.load(run["quick"], run.record.get("source", "auto"))
    if run["batch_size"] > size:
        raise checks.BadArgument(f"--batch-size {run['batch_size']} is larger than the training data ({size} "
                                 f"images); use at most {size}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise checks.BadArgument(f"--out {folder} cannot be made ({exc.strerror}); choose another folder.") from None
    if resuming:
        print(f"Resuming the unfinished {run['model']} run in {folder} after epoch {run.epochs_done()} of "
              f"{run['epochs']}.")
    else:
        run.save()
        if held_out is not None:
            held_out.save(folder / recipe.feed.held_out)
        print(f"Training {run['model']} for {run['epochs']} epochs (batch {run['batch_size']}, seed {run['seed']}) "
              f"into {folder}.")
    print(f"Devices: {where}; precision {run['precision']}.")
    try:
        # Networks, optimizers and training under the strategy, which splits each step's batch over the replicas.
        with strategy.scope():
            dataset, steps = recipe.feed.stream(train_data, run)
            trainer, extra = recipe.build(run["seed"], run["epochs"] * steps)
            if where.startswith("MultiWorker"):  # fit averages the logs over workers along axis 0: give them one
                step = trainer.train_step
                trainer.train_step = lambda batch: {k: keras.ops.reshape(v, (1,)) for k, v in step(batch).items()}
            dataset = distribute.split_dataset(dataset, strategy, recipe.feed.batch_axis)
            start = time.perf_counter()
            trainer.fit(dataset, epochs=run["epochs"], steps_per_epoch=steps, verbose=0,
                        callbacks=extra + run.callbacks(recipe.keys))
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume from the last finished epoch in {folder}.")
        raise
    if run.nan_stop.stopped_at is not None:
        run.save(status="failed", failure=run.nan_stop.message)
        print(f"The run in {folder} failed and is marked so; start a new run in another folder.")
        return run
    seconds = round(time.perf_counter() - start, 1)
    wrote = recipe.save(trainer, run, held_out)
    run.save(status="finished", train_seconds_last_part=seconds)
    print(f"Finished: wrote {wrote}, samples.png and history.json to {folder}.")
    return run


def evaluate(folder, n=1000, seed=0):
    """The metrics of the finished run in ``folder`` (its recipe's report) as a JSON-ready dict."""
    run = finished(folder, "evaluate")
    metrics.load_classifier(verbose=False)  # stdout stays pure JSON
    return {"model": run["model"], **recipes.RECIPES[run["model"]].report(run.folder, checks.count("n", n, 10),
                                                                          checks.count("seed", seed, 0))}


def sample(folder, out, n=1000, steps=None, guidance=None, label=None, seed=0):
    """Draw ``n`` digits from the finished diffusion run in ``folder`` into ``out`` (.npz): ``steps`` DDIM
    steps and ``guidance`` (None: the run's), digit ``label`` only (None: the classes in turn)."""
    run, out = finished(folder, "sample from"), Path(out)
    recipe = recipes.RECIPES[run["model"]]
    if recipe.sample is None:
        raise checks.BadArgument(f"DIR {folder} holds a {run['model']} run; 'sample' draws from a diffusion run "
                                 "(its generator is used by 'evaluate').")
    if out.is_dir() or not out.parent.is_dir():
        raise checks.BadArgument(f"--out {out} must name a file in an existing folder.")
    n, seed = checks.count("n", n), checks.count("seed", seed, 0)
    _, _, steps, guidance, seconds = recipe.sample(run.folder, out, n, steps, guidance, label, seed)
    print(f"Drew {n} digits ({steps} DDIM steps, guidance {guidance}, seed {seed}) in {seconds:.1f} s into {out}.")
