"""The progress line, as a reader sees it: in a log file, a terminal and a notebook; with a
time budget; stopped early; resumed."""

import io
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_lessons import callbacks

LINE = r"epoch {epoch} \[{bar}\] loss \d+\.\d{{3}}  0:\d\d elapsed, {end}"


def fit(progress, epochs=3, steps=2, **kwargs):
    """A tiny regression fitted with ``progress`` (and any other callbacks first)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensors((tf.ones((4, 2)), tf.ones((4, 1)))).repeat()
    extra = kwargs.pop("callbacks", [])
    history = model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=extra + [progress], **kwargs)
    return model, history.history


def test_a_log_file_gets_one_line_per_epoch_with_the_bar_and_the_losses(capsys):
    _, history = fit(callbacks.Progress(keys=["loss"], width=6))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line, epoch, bar in zip(lines, ("1/3", "2/3", "3/3"), ("##....", "####..", "######")):
        assert re.fullmatch(LINE.format(epoch=epoch, bar=re.escape(bar), end=r"~0:\d\d left"), line), line
    shown = [float(line.split("loss ")[1].split()[0]) for line in lines]
    assert shown == pytest.approx(history["loss"], abs=5e-4)
    assert lines[-1].endswith("~0:00 left")


def test_a_terminal_line_is_redrawn_in_place(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    fit(callbacks.Progress(keys=["loss"], width=4))
    text = screen.getvalue()
    assert text.startswith("\repoch 1/3 [#...] loss ") and text.count("\r") == 3
    assert text.count("\n") == 1 and text.endswith(" left\n") and "\repoch 3/3 [####] loss " in text


def test_a_notebook_line_is_one_output_updated_in_place(monkeypatch):
    import IPython
    import IPython.display

    class ZMQInteractiveShell:  # what get_ipython returns inside a Jupyter kernel
        pass

    shown = []

    class Handle:
        def update(self, data, raw=False):
            shown.append(("update", data["text/plain"]))

    def display(data, raw=False, display_id=None):
        shown.append(("display", data["text/plain"]))
        return Handle()

    monkeypatch.setattr(IPython, "get_ipython", ZMQInteractiveShell)
    monkeypatch.setattr(IPython.display, "display", display)
    fit(callbacks.Progress(keys=["loss"], width=2))
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert shown[0][1].startswith("epoch 1/3 [..] loss ") and shown[-1][1].startswith("epoch 3/3 [##] loss ")


def test_a_time_budget_stops_within_an_epoch_and_fills_the_bar(capsys):
    budget = callbacks.Progress(keys=["loss"], width=4, seconds=0.2)
    assert isinstance(budget, callbacks.Progress)
    model, history = fit(budget, epochs=1, steps=5000)  # several seconds of steps
    assert len(history["loss"]) == 1 and 1 <= int(model.optimizer.iterations) < 5000
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(LINE.format(epoch="1", bar="####", end="time budget spent"), line), line


def test_only_a_time_budget_adds_a_step_hook():
    """Keras waits for each step before it calls a step hook: a bar without a budget has none."""
    base = keras.callbacks.Callback.on_train_batch_end
    assert type(callbacks.Progress()).on_train_batch_end is base
    assert type(callbacks.Progress(seconds=1.0)).on_train_batch_end is not base
    with pytest.raises(ValueError, match=r"seconds must be a number in \(0, inf\); got -1"):
        callbacks.Progress(seconds=-1)


def test_a_run_stopped_early_or_resumed_says_so(capsys):
    stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 1))
    model, history = None, None
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), "float32")
    model.fit(x, x[:, :1], epochs=5, batch_size=4, verbose=0, callbacks=[stop, callbacks.Progress(width=5)])
    line = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(LINE.format(epoch="2/5", bar="##...", end="stopped after epoch 2"), line), line

    fit(callbacks.Progress(width=4), epochs=4, initial_epoch=2)  # a resumed run: epochs 3 and 4
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" [")[0] for line in lines] == ["epoch 3/4", "epoch 4/4"] and "[###.]" in lines[0]
