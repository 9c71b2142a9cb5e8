"""Lesson 01's ring sandbox: the training function the lesson and its widgets share, its
pictures, and the widgets' Train button (pressed from code, as a reader's click would)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from gan_lessons import checks, gan, sandbox


@pytest.fixture(scope="module")
def short_run():
    points, centres = sandbox.ring(512, seed=0)
    calls = []
    run = sandbox.train_ring(gan.MinimaxGAN, points, centres, d_steps=2, d_lr=2e-3, g_lr=5e-4, seed=1, steps=20,
                             every=10, snapshot_steps=(10,), progress=lambda step, total: calls.append((step, total)))
    return run, calls


def test_train_ring_measures_every_few_steps_and_keeps_the_snapshots_asked_for(short_run):
    run, calls = short_run
    assert run.history["step"] == [10, 20] and calls == [(10, 20), (20, 20)]
    assert sorted(run.snapshots) == [10, 20]  # the last step is always kept
    for covered, count in zip(run.history["covered"], run.history["modes_covered"]):
        assert covered.shape == (8,) and covered.sum() == count
    verdict, points, push = run.snapshots[20]
    assert verdict.shape == (sandbox.SIDE.size,) * 2 and ((verdict >= 0) & (verdict <= 1)).all()
    assert points.shape == push.shape == (sandbox.SHOWN, 2) and np.isfinite(push).all()


def test_draw_shows_each_snapshot_and_the_modes_over_time(short_run):
    fig = sandbox.draw(short_run[0], title="short run")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["step 10: 0 modes, 0% good", "step 20: 0 modes, 0% good", "Modes over training (green: covered)"]
    assert all(ax.get_xlabel() for ax in fig.axes[:3])
    plt.close(fig)


@pytest.mark.parametrize("bad", [{"d_steps": 0}, {"d_lr": 0.0}, {"g_lr": -1e-3}, {"steps": 5}])
def test_train_ring_refuses_bad_settings_with_a_sentence(bad):
    points, centres = sandbox.ring(256)
    with pytest.raises(checks.BadArgument):
        sandbox.train_ring(gan.GAN, points, centres, every=10, **{"steps": 20, **bad})


def test_the_train_button_trains_with_the_chosen_settings_and_draws(short_run):
    pytest.importorskip("ipywidgets")
    asked = []

    def train(progress, **settings):
        asked.append(settings)
        progress(10, 20)
        progress(20, 20)
        return short_run[0]

    defaults = {"loss": "non-saturating", "k": 1, "d_lr": 1e-3, "g_lr": 1e-3, "seed": 0}
    box = sandbox.open_sandbox(train, defaults)
    controls = [w for row in box.children[:3] for w in row.children]
    loss, k, d_lr, g_lr, seed, button, bar, status = controls
    loss.value, k.value, d_lr.value, seed.value = "saturating", 5, 1e-4, 3
    box.train()
    assert asked == [{"loss": "saturating", "k": 5, "d_lr": pytest.approx(1e-4), "g_lr": pytest.approx(1e-3),
                      "seed": 3}]
    assert (bar.value, bar.max) == (20, 20) and status.value.startswith("trained") and not button.disabled
