"""Callbacks: a sample grid per epoch (and the GIF made from it), a per-epoch history
file, resuming after a disconnect, stopping on NaN losses, and a late step down of the
learning rate."""

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from gan_lessons import plots


class SampleGrid(keras.callbacks.Callback):
    """Draws the generator's output on the same fixed inputs after every epoch.

    Fixed noise means the frames differ only because the generator learned, so
    they can be compared and played as a GIF. Frames are kept in ``self.frames``
    and, when ``frames_dir`` is given, saved as PNGs there, so that a resumed run
    (after a kernel restart) still has the earlier epochs.

    Args:
        inputs: fixed generator input (noise, or [noise, labels]).
        frames_dir: folder for epoch_XXXX.png frames (optional).
        show_every: show the grid inline every this many epochs (0: never).
        rows: rows of the grid (default: square).
        title: figure title prefix.
    """

    def __init__(self, inputs, frames_dir=None, show_every=0, rows=None, title="Samples from fixed noise"):
        super().__init__()
        self.inputs = inputs
        self.frames_dir = Path(frames_dir) if frames_dir else None
        self.show_every = show_every
        self.rows = rows
        self.title = title
        self.frames = []  # list of (epoch, tiled array in [0, 1])

    def on_train_begin(self, logs=None):
        self.frames = []
        if self.frames_dir is not None:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            import imageio.v2 as imageio

            for path in sorted(self.frames_dir.glob("epoch_*.png")):
                epoch = int(path.stem.split("_")[1])
                self.frames.append((epoch, imageio.imread(path).astype(np.float32) / 255.0))

    def generate(self):
        return np.asarray(self.model.generator(self.inputs, training=False))

    def on_epoch_end(self, epoch, logs=None):
        images = self.generate()
        canvas = plots.tile(images, rows=self.rows)
        self.frames = [f for f in self.frames if f[0] != epoch + 1] + [(epoch + 1, canvas)]
        if self.frames_dir is not None:
            import imageio.v2 as imageio

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
        """Write the frames collected so far to a GIF labelled with epoch numbers.

        ``every`` keeps every n-th frame (the last one always), which keeps the GIF
        of a long run small enough to embed in a notebook; ``scale`` enlarges pixels.
        """
        if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
            raise ValueError(f"every must be a positive integer; got {every!r}.")
        frames = sorted(self.frames, key=lambda f: f[0])
        frames = [f for i, f in enumerate(frames) if i % every == 0 or i == len(frames) - 1]
        return plots.save_gif([f[1] for f in frames], path, duration=duration, scale=scale,
                              labels=[f"epoch {f[0]}" for f in frames])


class HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs and wall seconds to a JSON file.

    Unlike Keras's in-memory ``History``, the file survives an interruption: a
    resumed run appends to what the first part wrote.
    """

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def read(self):
        if self.path.is_file():
            return json.loads(self.path.read_text())
        return {"epoch": [], "seconds": []}

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
    """Stops training with a clear message when a loss becomes NaN or infinite."""

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self.message = None

    def _check(self, logs, where):
        for key, value in (logs or {}).items():
            if value is not None and not math.isfinite(float(value)):
                self.model.stop_training = True
                self.stopped_at = where
                self.message = (f"Training stopped at {where}: {key} became {float(value)}. "
                                "Lower the learning rate, or check the data range.")
                print(self.message)
                return

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped_at is None:
            self._check(logs, f"step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped_at is None:
            self._check(logs, f"epoch {epoch + 1}")


class LearningRateStep(keras.callbacks.Callback):
    """Lowers both players' learning rate once, for the last epochs of a run.

    From epoch ``at_epoch`` (counted from 0) on, the discriminator's (critic's) and
    the generator's optimizers run at ``factor`` times their rates ``rates``
    (d, g); before it, at those rates. The rate is set at the start of every epoch
    from the epoch number alone, so a resumed run gets the right one.

    Why: at the high rates that learn fast, the weights keep jumping around a good
    solution with every step; a smaller step for the last epochs lets them settle.

    Args:
        at_epoch: first epoch (from 0) at the lower rate.
        factor: multiplier, in (0, 1].
        rates: the (discriminator, generator) learning rates before the step.
    """

    def __init__(self, at_epoch, factor, rates):
        super().__init__()
        if not 0 < factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {factor}.")
        if at_epoch < 0:
            raise ValueError(f"at_epoch must be >= 0, got {at_epoch}.")
        self.at_epoch = int(at_epoch)
        self.factor = float(factor)
        self.rates = tuple(float(r) for r in rates)

    def on_epoch_begin(self, epoch, logs=None):
        scale = self.factor if epoch >= self.at_epoch else 1.0
        for optimizer, rate in zip((self.model.d_optimizer, self.model.g_optimizer), self.rates):
            optimizer.learning_rate = rate * scale


def resume(backup_dir):
    """A callback that makes ``fit`` resumable after an interruption.

    Keras's ``BackupAndRestore`` saves the trainer (both networks and both
    optimizers' state) at the end of every epoch; when ``fit`` is called again
    after a crash, kernel restart or Ctrl-C, it reloads that state and continues
    from the next epoch. The backup is deleted when training finishes.
    """
    return keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=True)


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress(keras.callbacks.Callback):
    """A one-line progress bar over epochs: losses, elapsed and remaining time.

    In a notebook the line updates in place (so a saved notebook shows the final
    state, not hundreds of lines); in a terminal it is redrawn with a carriage
    return. Use with ``fit(..., verbose=0)``.

    Args:
        keys: which logs to show (default: every log whose name ends in "loss").
        width: characters of the bar.
    """

    def __init__(self, keys=None, width=24):
        super().__init__()
        self.keys = keys
        self.width = width
        self._handle = None

    def _in_notebook(self):
        try:
            from IPython import get_ipython

            shell = get_ipython()
            return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"
        except ImportError:  # pragma: no cover
            return False

    def _show(self, text, final=False):
        if self._notebook:
            from IPython.display import display

            if self._handle is None:
                self._handle = display({"text/plain": text}, raw=True, display_id=True)
            else:
                self._handle.update({"text/plain": text}, raw=True)
        else:
            import sys

            if sys.stdout.isatty():
                sys.stdout.write("\r" + text + ("\n" if final else ""))
            else:  # a log file: one line per epoch
                sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def on_train_begin(self, logs=None):
        self._notebook = self._in_notebook()
        self._handle = None
        self._start = time.perf_counter()
        self._epochs = self.params.get("epochs") or 0
        self._first = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first is None:
            self._first = epoch  # a resumed run starts after 0

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        elapsed = time.perf_counter() - self._start
        ran = done - self._first
        left = elapsed / max(ran, 1) * (self._epochs - done)
        filled = int(self.width * done / max(self._epochs, 1))
        bar = "#" * filled + "." * (self.width - filled)
        logs = logs or {}
        keys = self.keys or [k for k in logs if k.endswith("loss")]
        values = "  ".join(f"{k} {float(logs[k]):.3f}" for k in keys if k in logs)
        text = (f"epoch {done}/{self._epochs} [{bar}] {values}  "
                f"{_clock(elapsed)} elapsed, ~{_clock(left)} left")
        self._show(text, final=done == self._epochs)
