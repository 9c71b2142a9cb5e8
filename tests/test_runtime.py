"""Quick mode, the GPU settings of pick, and what setup prints."""

import pytest

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


def test_setup_says_which_settings_run(full_mode, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    monkeypatch.setattr(runtime, "describe_device", lambda: "Training on 1 GPU(s): a test GPU.")
    runtime.setup(seed=3)
    assert capsys.readouterr().out == (
        "Training on 1 GPU(s): a test GPU. Running in full mode with the lesson's GPU settings where it has them "
        "(more data; GAN_LESSONS_CPU_SETTINGS=1 keeps the values the text describes); seed 3.\n")
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    runtime.setup(seed=0)
    assert capsys.readouterr().out.endswith("Running in full mode; seed 0.\n")
