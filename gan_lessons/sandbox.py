"""Lesson 01's ring sandbox: a GAN on eight Gaussians in the plane, trained in seconds and drawn
the way GAN Lab draws it (Kahng et al., 2018): D's verdict over the plane as colour, the
generator's points with the push its loss gives each, and which modes are covered as training
goes. ``train_ring`` trains a course trainer (``gan.GAN`` or a subclass) on the ring, ``draw``
draws a run, and ``open_sandbox`` adds controls (ipywidgets) that re-train with other settings."""

import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from gan_lessons import checks, data, metrics, runtime

STD = 0.02          # standard deviation of each mode of the ring
EXTENT = 3.0        # the plane drawn: [-3, 3] x [-3, 3]
SIDE = np.linspace(-EXTENT, EXTENT, 121)
PLANE = np.stack(np.meshgrid(SIDE, SIDE), axis=-1).reshape(-1, 2).astype("float32")
SHOWN = 200         # generated points drawn with their push


def ring(n, seed=0):
    """n points of the ring (8 Gaussians of std 0.02 on a circle of radius 2) and its centres."""
    return data.gaussian_ring(n, modes=8, radius=2.0, std=STD, seed=seed)


def ring_mlp(outputs, name):
    """2 numbers in (noise or a point), three ReLU layers of 128 units, ``outputs`` numbers out."""
    x = keras.Input(shape=(2,))
    h = x
    for _ in range(3):
        h = keras.layers.Dense(128, activation="relu")(h)
    return keras.Model(x, keras.layers.Dense(outputs)(h), name=name)


class RingMonitor(keras.callbacks.Callback):
    """Every ``every`` generator steps (one epoch of ``fit``): which modes 2,000 points from fixed
    noise cover, the share of good points (within 3 std of a centre) and the mean D(G(z)) of those
    steps; at ``snapshot_steps``: D over the plane and the push on 200 points. ``progress(step,
    total)`` is called after each measurement."""

    def __init__(self, centres, every, snapshot_steps=(), progress=None):
        super().__init__()
        self.centres, self.every, self.snapshot_steps, self.progress = centres, every, set(snapshot_steps), progress
        self.noise = np.random.default_rng(7).standard_normal((2000, 2)).astype("float32")
        self.history = {"step": [], "modes_covered": [], "good": [], "D(G(z))": [], "covered": []}
        self.snapshots = {}

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.every
        points = self.model.generator(self.noise, training=False).numpy()
        result = metrics.mode_coverage(points, self.centres, STD)
        # A mode is covered when it holds a fifth of its fair share of good points (metrics.mode_coverage).
        covered = np.asarray(result["counts"]) >= 0.2 * len(points) / len(self.centres)
        for key, value in (("step", step), ("modes_covered", result["modes_covered"]), ("covered", covered),
                           ("good", result["high_quality"]), ("D(G(z))", float(logs["D(G(z))"]))):
            self.history[key].append(value)
        self.last_points = points
        if step in self.snapshot_steps:
            self.snapshots[step] = self.snapshot(points[:SHOWN])
        if self.progress is not None:
            self.progress(step, self.params["epochs"] * self.every)

    def snapshot(self, points):
        """D's verdict over the plane, the points, and each point's push: minus the gradient of
        the generator's loss with respect to the point (the loss is a mean: times the count)."""
        shown = tf.constant(points)
        with tf.GradientTape() as tape:
            tape.watch(shown)
            loss = self.model.generator_loss(self.model.discriminator(shown, training=False)) * len(points)
        push = -tape.gradient(loss, shown).numpy()
        verdict = tf.sigmoid(self.model.discriminator(PLANE, training=False)).numpy()
        return verdict.reshape(SIDE.size, SIDE.size), points, push


def train_ring(trainer_class, points, centres, d_steps=1, d_lr=1e-3, g_lr=1e-3, seed=0, steps=1500,
               every=100, snapshot_steps=(), progress=None):
    """Train ``trainer_class`` (the lesson's GAN or a subclass) on the ring ``points`` for ``steps``
    generator steps, batch 256, Adam(beta_1=0.5) at ``d_lr`` and ``g_lr``; returns the monitor
    (``history``, ``snapshots``: always at the last step, ``last_points``)."""
    d_steps, seed = checks.count("d_steps", d_steps), checks.seed("seed", seed)
    d_lr = checks.number("d_lr", d_lr, 0.0, 1.0, low_open=True)
    g_lr = checks.number("g_lr", g_lr, 0.0, 1.0, low_open=True)
    every = checks.count("every", every)
    if checks.count("steps", steps) < every:
        raise checks.BadArgument(f"steps must be at least every ({every}); got {steps}.")
    runtime.set_seed(seed)
    trainer = trainer_class(ring_mlp(2, "ring_generator"), ring_mlp(1, "ring_discriminator"), d_steps=d_steps, seed=seed)
    trainer.compile(d_optimizer=keras.optimizers.Adam(d_lr, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(g_lr, beta_1=0.5))
    dataset, _ = data.make_dataset(points, batch_size=256, seed=seed)
    monitor = RingMonitor(centres, every, set(snapshot_steps) | {steps // every * every}, progress)
    trainer.fit(dataset, epochs=steps // every, steps_per_epoch=every, verbose=0, callbacks=[monitor])
    return monitor


def draw_game(ax, run, step):
    """D as colour, the points with their push as arrows (1 unit of the plot: a push of 8, shown
    by a key in the lower right corner), and the mode centres: a green circle when covered, a
    grey cross when not. Returns the image."""
    verdict, points, push = run.snapshots[step]
    i = run.history["step"].index(step)
    covered = run.history["covered"][i]
    image = ax.imshow(verdict, origin="lower", extent=(-EXTENT, EXTENT, -EXTENT, EXTENT), cmap="RdBu_r", vmin=0, vmax=1,
                      interpolation="nearest")  # smoothing would triple the size of the saved picture
    ax.scatter(*run.centres[covered].T, s=160, facecolors="none", edgecolors="lime", linewidths=2)
    ax.scatter(*run.centres[~covered].T, s=40, marker="x", color="0.4")
    ax.scatter(points[:, 0], points[:, 1], s=3, color="black")
    arrows = ax.quiver(points[:, 0], points[:, 1], push[:, 0], push[:, 1], angles="xy", scale_units="xy", scale=8,
                       width=0.004, color="black")
    # The key, on a white patch in the lower right corner: an arrow one unit long is a push of 8.
    ax.add_patch(plt.Rectangle((0.42, 0.0), 0.58, 0.1, transform=ax.transAxes, facecolor="white", alpha=0.85,
                               edgecolor="none", zorder=3))
    ax.quiverkey(arrows, X=0.62, Y=0.05, U=8, label="push of 8", labelpos="E", coordinates="axes",
                 fontproperties={"size": 8}, zorder=4)
    ax.set(title=f"step {step}: {covered.sum()} modes, {run.history['good'][i]:.0%} good", xlabel="x1",
           ylabel="x2", xlim=(-EXTENT, EXTENT), ylim=(-EXTENT, EXTENT), aspect="equal")
    return image


def draw_modes(ax, run, title="Modes over training (green: covered)"):
    """Which modes are covered at each measurement: one row per mode, green when covered."""
    steps, covered = run.history["step"], np.array(run.history["covered"], dtype=float).T
    ax.imshow(covered, aspect="auto", origin="lower", cmap="Greens", vmin=0, vmax=1.2, interpolation="nearest",
              extent=(steps[0] - run.every / 2, steps[-1] + run.every / 2, -0.5, covered.shape[0] - 0.5))
    ax.set(title=title, xlabel="generator step", ylabel="mode (0: right; anticlockwise)",
           yticks=range(covered.shape[0]))


def draw(run, title="The game on the plane"):
    """GAN Lab's picture of a run: the game at each snapshot step, then the modes covered over time."""
    shown = sorted(run.snapshots)
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(3.4 * len(shown) + 4.6, 3.9), layout="constrained",
                             gridspec_kw={"width_ratios": [1] * len(shown) + [1.3]})
    for ax, step in zip(axes, shown):
        image = draw_game(ax, run, step)
    fig.colorbar(image, ax=list(axes[:-1]), fraction=0.02, pad=0.02, label="D(x)")
    draw_modes(axes[-1], run)
    fig.suptitle(f"{title}: D(x), the probability of being real, as colour; G's points with their push; "
                 "covered modes circled")
    return fig


def open_sandbox(train, defaults, losses=("non-saturating", "saturating")):
    """Controls that call ``train(loss=, k=, d_lr=, g_lr=, seed=, progress=)`` and show ``draw`` of
    its run below them. ``defaults``: the starting values of those five settings. Returns the
    widget box; ``box.train()`` does what its Train button does (for scripts and tests)."""
    import ipywidgets as widgets
    from IPython.display import display

    style = {"description_width": "initial"}
    loss = widgets.ToggleButtons(options=list(losses), value=defaults["loss"], description="G's loss", style=style)
    k = widgets.IntSlider(value=defaults["k"], min=1, max=5, description="k (D steps per G step)", style=style)
    rates = [widgets.FloatLogSlider(value=defaults[name], base=10, min=-5, max=-2, step=0.25, readout_format=".1e",
                                    description=label, style=style)
             for name, label in (("d_lr", "D's learning rate"), ("g_lr", "G's learning rate"))]
    seed = widgets.BoundedIntText(value=defaults["seed"], min=0, max=9999, description="seed", style=style,
                                  layout=widgets.Layout(width="150px"))
    button = widgets.Button(description="Train", button_style="primary", icon="play")
    bar, status, out = widgets.IntProgress(value=0, min=0, max=1), widgets.Label(), widgets.Output()

    def progress(step, total):
        bar.max, bar.value = total, step

    def on_click(_=None):
        button.disabled, bar.value, status.value = True, 0, "training..."
        start, done = time.perf_counter(), False
        try:
            with out:  # in a notebook an error shows here, not in a hidden log
                out.clear_output(wait=True)
                run = train(loss=loss.value, k=k.value, d_lr=rates[0].value, g_lr=rates[1].value, seed=seed.value,
                            progress=progress)
                fig = draw(run, title=f"{loss.value}, k = {k.value}, learning rates {rates[0].value:.1e} (D) "
                                      f"and {rates[1].value:.1e} (G), seed {seed.value}")
                display(fig)
                plt.close(fig)
                done = True
        finally:
            button.disabled = False
            status.value = f"trained and drawn in {time.perf_counter() - start:.0f} s" if done else "failed"

    button.on_click(on_click)
    box = widgets.VBox([widgets.HBox([loss, k]), widgets.HBox(rates), widgets.HBox([seed, button, bar, status]), out])
    box.train = on_click
    return box
