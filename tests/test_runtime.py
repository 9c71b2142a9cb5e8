"""Quick mode, the GPU settings of pick, and what setup prints."""

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
    monkeypatch.delenv(runtime.CPU_SETTINGS_ENV, raising=False)


def test_pick_quick_mode_wins_everywhere(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert runtime.is_quick()  # conftest sets quick mode
    assert runtime.pick(full=40, quick=1, gpu=80) == 1


def test_pick_full_values_on_a_cpu(full_mode, monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    assert runtime.pick(full=4000, quick=512, gpu=None) == 4000
    assert runtime.pick(full=40, quick=1) == 40


def test_pick_gpu_values_on_a_gpu_unless_cpu_settings_are_asked_for(full_mode, monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert runtime.pick(full=4000, quick=512, gpu=None) is None  # None is a value: all the data
    assert runtime.pick(full=40, quick=1) == 40  # no GPU value given: the full one
    monkeypatch.setenv(runtime.CPU_SETTINGS_ENV, "1")
    assert runtime.pick(full=4000, quick=512, gpu=None) == 4000


class _FakeGPU:
    name = "/physical_device:GPU:0"


@pytest.mark.parametrize("quick, gpus, cpu_settings, mode", [
    ("1", 0, "", "QUICK mode (few steps, little data)"),
    ("", 0, "", "full mode"),
    ("", 1, "", "full mode with the lesson's GPU settings where it has them"),
    ("", 1, "1", "full mode"),
])
def test_setup_says_which_settings_run(quick, gpus, cpu_settings, mode, monkeypatch, capsys):
    """setup names the device TensorFlow reports and the settings that pick then returns, and
    really seeds Python, NumPy, Keras and TensorFlow. Only the hardware is faked (TensorFlow's
    list of GPUs)."""
    devices = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [_FakeGPU()] * gpus if kind == "GPU" else devices(kind))
    monkeypatch.setenv(runtime.QUICK_ENV, quick)
    monkeypatch.setenv(runtime.CPU_SETTINGS_ENV, cpu_settings)
    runtime.setup(seed=3)
    device = f"Training on 1 GPU(s): {_FakeGPU.name}." if gpus else f"Training on the CPU ({os.cpu_count()} cores)"
    line = capsys.readouterr().out
    assert line.startswith(device) and line.count("\n") == 1 and line.endswith("; seed 3.\n")
    assert f"Running in {mode}" in line and (mode != "full mode" or "GPU settings" not in line)
    used = runtime.pick(full="full mode", quick="QUICK mode", gpu="full mode with the lesson's GPU settings")
    assert mode.startswith(used)  # the line names the settings the lesson's pick() calls get

    def draws():
        return (random.random(), np.random.rand(), float(keras.random.uniform(())), float(tf.random.uniform(())))

    first = draws()
    runtime.setup(seed=3, verbose=False)
    assert draws() == first and capsys.readouterr().out == ""
    runtime.setup(seed=4, verbose=False)
    assert all(a != b for a, b in zip(draws(), first))
