"""Quick mode, the opt-in larger settings of pick, and what setup prints."""

import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_lessons import runtime


@pytest.fixture
def full_mode(monkeypatch):
    monkeypatch.delenv(runtime.QUICK_ENV, raising=False)
    monkeypatch.delenv(runtime.MORE_ENV, raising=False)


def test_pick_quick_mode_wins_everywhere(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert runtime.is_quick()  # conftest sets quick mode
    assert runtime.pick(full=40, quick=1, gpu=80) == 1


def test_pick_full_values_on_a_cpu(full_mode, monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    assert runtime.pick(full=4000, quick=512, gpu=None) == 4000
    assert runtime.pick(full=40, quick=1) == 40


@pytest.mark.parametrize("gpu", [True, False])
def test_pick_larger_values_only_when_asked_for(full_mode, monkeypatch, gpu):
    """A GPU runs the values the text describes; the larger ones are one opt-in, on any device."""
    monkeypatch.setattr(runtime, "has_gpu", lambda: gpu)
    assert runtime.pick(full=4000, quick=512, gpu=None) == 4000
    monkeypatch.setenv(runtime.MORE_ENV, "1")
    assert runtime.pick(full=4000, quick=512, gpu=None) is None  # None is a value: all the data
    assert runtime.pick(full=40, quick=1) == 40  # no larger value given: the full one
    monkeypatch.setenv(runtime.MORE_ENV, "0")
    assert runtime.pick(full=4000, quick=512, gpu=None) == 4000


class _FakeGPU:
    name = "/physical_device:GPU:0"


@pytest.mark.parametrize("quick, gpus, more, mode", [
    ("1", 0, "", "QUICK mode (few steps, little data)"),
    ("1", 1, "1", "QUICK mode (few steps, little data)"),
    ("", 0, "", "full mode"),
    ("", 1, "", "full mode"),
    ("", 1, "1", "full mode with more data or steps where a lesson has them (GAN_LESSONS_MORE=1: not measured"),
    ("", 0, "1", "full mode with more data or steps"),
])
def test_setup_says_which_settings_run(quick, gpus, more, mode, monkeypatch, capsys):
    """setup names the device TensorFlow reports, the settings that pick then returns and whether ops are
    deterministic (only without a GPU), and really seeds Python, NumPy, Keras and TensorFlow. Only the hardware
    is faked (TensorFlow's list of GPUs)."""
    devices = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [_FakeGPU()] * gpus if kind == "GPU" else devices(kind))
    monkeypatch.setenv(runtime.QUICK_ENV, quick)
    monkeypatch.setenv(runtime.MORE_ENV, more)
    runtime.setup(seed=3)
    device = f"Training on 1 GPU(s): {_FakeGPU.name}." if gpus else f"Training on the CPU ({os.cpu_count()} cores)"
    exact = "fast GPU ops: a rerun differs slightly" if gpus else "deterministic ops: a rerun repeats exactly"
    line = capsys.readouterr().out
    assert line.startswith(device) and line.count("\n") == 1 and line.endswith(f"; seed 3, {exact}.\n")
    assert f"Running in {mode}" in line and (mode != "full mode" or "not measured" not in line)
    used = runtime.pick(full="full mode", quick="QUICK mode", gpu="full mode with more data")
    assert mode.startswith(used)  # the line names the settings the lesson's pick() calls get

    def draws():
        return (random.random(), np.random.rand(), float(keras.random.uniform(())), float(tf.random.uniform(())))

    first = draws()
    runtime.setup(seed=3, verbose=False)
    assert draws() == first and capsys.readouterr().out == ""
    runtime.setup(seed=4, verbose=False)
    assert all(a != b for a, b in zip(draws(), first))


def test_op_determinism_only_without_a_gpu(monkeypatch):
    """Deterministic kernels cost nothing on the CPU; on a GPU they are slower, some ops have none, and Keras
    compiles without XLA while they are on, so set_seed asks for them only where no GPU is visible."""
    asked = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: asked.append(True))
    for gpu, wanted in ((True, []), (False, [True])):
        monkeypatch.setattr(runtime, "has_gpu", lambda: gpu)
        asked.clear()
        runtime.set_seed(1)
        assert asked == wanted
