"""Callbacks for ``fit``: a sample grid per epoch (and the GIF made from it), FID per epoch, a
per-epoch history file, resuming after a disconnect, stopping on NaN losses, a moving average of
the generator's weights, and a one-line progress bar."""

import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gan_lessons import checks, metrics, plots


class SampleGrid(keras.callbacks.Callback):
    """Draws ``generator`` (default: the trainer's) on the same fixed ``inputs`` (noise, or [noise, labels])
    after every epoch, so the frames (``self.frames``; PNGs in ``frames_dir`` when given, which a resumed run
    keeps) differ only because it learned. ``show_every``: show the grid inline every this many epochs (0:
    never); ``rows``: rows of the grid (default: square); ``title``: the start of the figure's title."""

    def __init__(self, inputs, generator=None, frames_dir=None, show_every=0, rows=None,
                 title="Samples from fixed noise"):
        super().__init__()
        self.inputs, self.generator, self.show_every, self.rows, self.title = inputs, generator, show_every, rows, title
        self.frames_dir = Path(frames_dir) if frames_dir else None
        self.frames = []  # list of (epoch, tiled array in [0, 1])

    def on_train_begin(self, logs=None):
        self.frames = []
        if self.frames_dir is not None:  # a resumed run: the frames of the epochs done
            import imageio.v2 as imageio

            self.frames_dir.mkdir(parents=True, exist_ok=True)
            self.frames = [(_epoch(path), imageio.imread(path).astype(np.float32) / 255.0)
                           for path in sorted(self.frames_dir.glob("epoch_*.png"))]

    def generate(self):
        return np.asarray((self.generator or self.model.generator)(self.inputs, training=False))

    def on_epoch_end(self, epoch, logs=None):
        images = self.generate()
        canvas = plots.tile(images, rows=self.rows)
        # Frames after this epoch are left over from an earlier, longer run in the same folder.
        self.frames = [f for f in self.frames if f[0] < epoch + 1] + [(epoch + 1, canvas)]
        if self.frames_dir is not None:
            import imageio.v2 as imageio

            for path in self.frames_dir.glob("epoch_*.png"):
                if _epoch(path) > epoch + 1:
                    path.unlink()
            imageio.imwrite(self.frames_dir / f"epoch_{epoch + 1:04d}.png",
                            np.round(canvas * 255).astype(np.uint8))
        if self.show_every and (epoch + 1) % self.show_every == 0:
            import matplotlib.pyplot as plt
            from IPython.display import display

            fig = plots.image_grid(images, f"{self.title}, epoch {epoch + 1}", rows=self.rows,
                                   xlabel="sample", ylabel="sample", size=3.2)
            display(fig)
            plt.close(fig)

    def save_gif(self, path, duration=0.25, every=1, scale=3):
        """Write the frames so far to a GIF labelled with epoch numbers: every ``every``-th frame (and the
        last), which keeps a long run's GIF small; ``scale`` enlarges pixels."""
        every = checks.count("every", every)
        frames = sorted(self.frames, key=lambda f: f[0])
        frames = [f for i, f in enumerate(frames) if i % every == 0 or i == len(frames) - 1]
        return plots.save_gif([f[1] for f in frames], path, duration=duration, scale=scale,
                              labels=[f"epoch {f[0]}" for f in frames])


def _epoch(frame_path):
    return int(frame_path.stem.split("_")[1])


class HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs and wall seconds to a JSON file. Unlike Keras's in-memory
    ``History``, the file survives an interruption: a resumed run appends to what was written."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def read(self):
        return json.loads(self.path.read_text()) if self.path.is_file() else {"epoch": [], "seconds": []}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        record = self.read()
        keep = [i for i, e in enumerate(record["epoch"]) if e < epoch + 1]
        record = {k: [v[i] for i in keep] for k, v in record.items()}
        record["epoch"].append(epoch + 1)
        record["seconds"].append(round(time.perf_counter() - self._start, 3))
        for key, value in (logs or {}).items():
            record.setdefault(key, [None] * (len(record["epoch"]) - 1)).append(float(value))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(self.path)


class StopOnNaN(keras.callbacks.Callback):
    """Stops training with a clear message when a loss becomes NaN or infinite, and leaves
    the message on the trainer as ``failure`` (``resume`` then marks the run failed)."""

    def __init__(self):
        super().__init__()
        self.stopped_at, self.message = None, None

    def _check(self, logs, where):
        for key, value in (logs or {}).items():
            if value is not None and not math.isfinite(float(value)):
                self.model.stop_training = True
                self.stopped_at = where
                self.message = (f"Training stopped at {where}: {key} became {float(value)}. "
                                "Lower the learning rate, or check the data range (and that labels are 0-9).")
                self.model.failure = self.message
                print(self.message)
                return

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped_at is None:
            self._check(logs, f"step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped_at is None:
            self._check(logs, f"epoch {epoch + 1}")


class GeneratorAverage(keras.callbacks.Callback):
    """Keeps ``model.generator_average``, a copy of the generator whose every weight (BatchNorm's
    statistics included) is updated after each step as ``momentum * average + (1 - momentum) *
    weight``: with momentum 0.999, about the last 1,000 steps. Training never uses it. Early
    on it still holds much of the random start and draws worse than the raw generator; once that
    has faded it follows the raw weights with less jitter (lesson 02 measures both). Made when ``fit`` starts, as an
    attribute of the trainer, so a checkpoint (``resume``) keeps it. ``network`` names the
    trainer's network to average ("denoiser": ``model.denoiser_average``)."""

    def __init__(self, momentum=0.999, network="generator"):
        super().__init__()
        self.momentum = checks.number("momentum", momentum, 0.0, 1.0, high_open=True)
        self.network = network

    def set_model(self, model):
        super().set_model(model)
        source, name = getattr(model, self.network), f"{self.network}_average"
        if getattr(model, name, None) is None:
            setattr(model, name, keras.models.clone_model(source))
            getattr(model, name).set_weights(source.get_weights())
            getattr(model, name).trainable = False
        self._pairs = list(zip(getattr(model, name).weights, source.weights))
        self._update = tf.function(self._step)  # one compiled call for all the weights, made for this trainer

    def on_train_batch_end(self, batch, logs=None):
        self._update()

    def _step(self):
        m = self.momentum
        for average, weight in self._pairs:
            average.assign(m * average + (1.0 - m) * weight)


class BackupRefused(RuntimeError):
    """A backup that ``resume`` will not load (a failed run, or other networks)."""


def resume(backup_dir):
    """A callback that makes ``fit`` resumable: Keras's ``BackupAndRestore`` saves the trainer after every
    epoch and a ``fit`` called again continues from the next one. A run that ``StopOnNaN`` stopped keeps its
    backup, marked failed, which ``fit`` refuses (``BackupRefused``), as it refuses one of other networks."""
    return _Backup(str(backup_dir), save_freq="epoch", delete_checkpoint=True)


class _Backup(keras.callbacks.BackupAndRestore):
    def on_train_begin(self, logs=None):
        marker = Path(self.backup_dir) / "FAILED"
        if marker.is_file():
            raise BackupRefused(f"The run backed up in {self.backup_dir} failed ({marker.read_text()}) and cannot "
                                "be resumed; delete that folder to train again from the start.")
        try:
            super().on_train_begin(logs)
        except ValueError as err:  # a backup of other networks, for example from an older version of a lesson
            reason = str(err).strip().splitlines()[0].split(". ")[0].rstrip(".:")
            raise BackupRefused(f"The backup in {self.backup_dir} does not fit this model ({reason}); delete that "
                                "folder to train again from the start.") from None

    def on_train_end(self, logs=None):
        if getattr(self.model, "failure", None):  # left by StopOnNaN: keep the folder, marked failed
            Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.backup_dir) / "FAILED").write_text(self.model.failure)
            return
        super().on_train_end(logs)


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress(keras.callbacks.Callback):
    """A one-line progress bar over epochs (use with ``fit(..., verbose=0)``): the logs ``keys`` (default:
    those ending in "loss"), elapsed and remaining time; updated in place in a notebook, redrawn in a terminal,
    a line per epoch in a log file. ``seconds``: a time budget: ``fit`` stops after the first step that ends
    this many seconds after training began, and the bar measures time (give ``fit`` epochs enough)."""

    def __new__(cls, keys=None, width=24, seconds=None):
        # Keras waits for every step before calling a callback with a step hook: only a time budget has one.
        return super().__new__(_TimedProgress if seconds is not None and cls is Progress else cls)

    def __init__(self, keys=None, width=24, seconds=None):
        super().__init__()
        self.keys, self.width = keys, width
        self.seconds = None if seconds is None else checks.number("seconds", seconds, 0.0, low_open=True)

    def _show(self, text, final=False):
        if self._handle is not None:  # a notebook
            self._handle.update({"text/plain": text}, raw=True)
        elif self._notebook:
            from IPython.display import display

            self._handle = display({"text/plain": text}, raw=True, display_id=True)
        else:
            import sys

            tty = sys.stdout.isatty()  # a terminal redraws the line; a log file gets a line per epoch
            sys.stdout.write(("\r" + text + ("\n" if final else "")) if tty else text + "\n")
            sys.stdout.flush()

    def on_train_begin(self, logs=None):
        try:
            from IPython import get_ipython

            self._notebook = type(get_ipython()).__name__ == "ZMQInteractiveShell"
        except ImportError:  # pragma: no cover
            self._notebook = False
        self._handle, self._first = None, None
        self._start, self._epochs = time.perf_counter(), self.params.get("epochs") or 0

    def on_epoch_begin(self, epoch, logs=None):
        if self._first is None:
            self._first = epoch  # a resumed run starts after 0

    def on_epoch_end(self, epoch, logs=None):
        done, elapsed = epoch + 1, time.perf_counter() - self._start
        if self.seconds is None:
            left, share = elapsed / max(done - self._first, 1) * (self._epochs - done), done / max(self._epochs, 1)
        else:
            left, share = max(self.seconds - elapsed, 0.0), min(elapsed / self.seconds, 1.0)
        filled = int(self.width * share)
        bar = "#" * filled + "." * (self.width - filled)
        logs = logs or {}
        keys = self.keys or [k for k in logs if k.endswith("loss")]
        values = "  ".join(f"{k} {float(logs[k]):.3f}" for k in keys if k in logs)
        stopped = bool(getattr(self.model, "stop_training", False))  # a callback ended fit early
        of = f"/{self._epochs}" if self.seconds is None else ""
        text = (f"epoch {done}{of} [{bar}] {values}  {_clock(elapsed)} elapsed, "
                + (("time budget spent" if self.seconds is not None and elapsed >= self.seconds
                    else f"stopped after epoch {done}") if stopped else f"~{_clock(left)} left"))
        self._show(text, final=stopped or done == self._epochs)


class _TimedProgress(Progress):
    """``Progress`` with a time budget, checked after every step."""

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self._start >= self.seconds:
            self.model.stop_training = True


class FIDMonitor(keras.callbacks.Callback):
    """FID of the trainer's generator on fixed noise every ``every`` epochs and after the last, kept in
    ``self.history`` (with "label_accuracy" for a conditional generator, asked for each digit in turn);
    ``log=True`` puts them in the epoch's logs too (put it before the callbacks that read them; every=1).
    FID reads higher for small ``n``: compare values at equal n only."""

    def __init__(self, every=1, n=500, seed=0, log=False):
        super().__init__()
        self.every, self.n = checks.count("every", every), checks.count("n", n, minimum=10)
        self.seed, self.log = seed, bool(log)
        self.history = {"epoch": [], "fid": []}

    def on_train_begin(self, logs=None):
        reference, _ = metrics.reference_digits(self.n)
        self._reference = metrics.gaussian_stats(metrics.features(reference))
        self._inputs, self._labels = metrics.generator_inputs(self.model.generator, self.n, self.seed)
        if self._labels is not None:
            self.history.setdefault("label_accuracy", [])

    def measure(self):
        """{"fid": ...} of the generator now (and "label_accuracy" when it is conditional)."""
        images = metrics.generate(self.model.generator, self._inputs)
        values = {"fid": metrics.frechet_distance(*metrics.gaussian_stats(metrics.features(images)),
                                                  *self._reference)}
        if self._labels is not None:
            values["label_accuracy"] = metrics.label_accuracy(images, self._labels)
        return values

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and self.params.get("epochs") != epoch + 1:
            return
        values = self.measure()
        keep = [i for i, e in enumerate(self.history["epoch"]) if e <= epoch]  # a resumed run redoes later epochs
        self.history = {k: [v[i] for i in keep] for k, v in self.history.items()}
        self.history["epoch"].append(epoch + 1)
        for key, value in values.items():
            self.history[key].append(value)
            if self.log and logs is not None:
                logs[key] = value
