"""Figures for the lessons: image grids, loss curves, distributions, interpolations, GIFs.

Every function returns the matplotlib Figure and gives it a title and axis labels.
"""

import os
import reprlib
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from gan_lessons import checks


def _to_display(images):
    """(N, H, W, C) in [-1, 1] -> (N, H, W) or (N, H, W, 3) floats in [0, 1]."""
    x = checks.array("images", images, "(N, H, W)", "(N, H, W, C)")
    x = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    return x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x


def _layout(n, rows, cols):
    """Rows and columns for n images: as given, or as square as possible."""
    rows = None if rows is None else checks.count("rows", rows)
    cols = None if cols is None else checks.count("cols", cols)
    if cols is None:
        cols = int(np.ceil(np.sqrt(n))) if rows is None else int(np.ceil(n / rows))
    return (int(np.ceil(n / cols)) if rows is None else rows), cols


def tile(images, rows=None, cols=None, pad=1):
    """Tile images (N, H, W[, C]) in [-1, 1] into one array in [0, 1] (padding white)."""
    x, pad = _to_display(images), checks.count("pad", pad, minimum=0)
    n, (h, w) = len(x), x.shape[1:3]
    rows, cols = _layout(n, rows, cols)
    shape = (rows * (h + pad) + pad, cols * (w + pad) + pad) + x.shape[3:]
    canvas = np.ones(shape, dtype=np.float32)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top:top + h, left:left + w] = x[i]
    return canvas


def _labels(name, labels, n, per):
    """``labels`` as a list of n strings, or None."""
    labels = None if labels is None else [str(s) for s in labels]
    if labels is not None and len(labels) != n:
        raise checks.BadArgument(f"{name} must hold {n} labels, one per {per}; got {len(labels)}: {labels!r}.")
    return labels


def _figure(ax, figsize):
    """The figure and axes to draw on: ``ax`` and its figure, or a new figure of ``figsize``."""
    return (ax.figure, ax) if ax is not None else plt.subplots(figsize=figsize)


def image_grid(images, title, rows=None, cols=None, row_labels=None, col_labels=None,
               xlabel=None, ylabel=None, size=None, ax=None):
    """Show images in a grid with a title; optional labels for rows and columns."""
    x = np.asarray(images)
    canvas = tile(x, rows, cols)
    rows, cols = _layout(len(x), rows, cols)
    row_labels = _labels("row_labels", row_labels, rows, "row")
    col_labels = _labels("col_labels", col_labels, cols, "column")
    scale = max(3.0, min(9.0, 0.55 * cols)) if size is None else checks.number("size", size, 0.0, low_open=True)
    fig, ax = _figure(ax, (scale, scale * rows / cols + 0.6))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    h, w = x.shape[1:3]
    ax.set_yticks([] if row_labels is None else [1 + r * (h + 1) + h / 2 for r in range(rows)], row_labels)
    ax.set_xticks([] if col_labels is None else [1 + c * (w + 1) + w / 2 for c in range(cols)], col_labels)
    ax.set_xlabel(xlabel if xlabel is not None else f"{cols} columns")
    ax.set_ylabel(ylabel if ylabel is not None else f"{rows} rows")
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout()
    return fig


def plot_losses(history, keys=None, title="Losses of the two players", xlabel="epoch", ylabel="loss",
                ax=None):
    """Plot per-epoch values from a Keras ``History`` or a dict of lists."""
    values = getattr(history, "history", history)
    if not isinstance(values, Mapping):
        raise checks.BadArgument(f"history must be a Keras History or a dict of lists; got {history!r}.")
    keys = [k for k in values if k.endswith("loss")] if keys is None else keys
    if isinstance(keys, str) or not isinstance(keys, (list, tuple)) or not keys or any(k not in values for k in keys):
        raise checks.BadArgument(f"keys must be a non-empty list of names in the history "
                                 f"({', '.join(map(repr, values))}); got {keys!r}.")
    fig, ax = _figure(ax, (7, 3.8))
    for key in keys:
        series = values[key]
        ax.plot(np.arange(1, len(series) + 1), series, marker="o" if len(series) < 30 else None,
                label=key)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def scatter_2d(points, title, reference=None, centres=None, ax=None, lim=None):
    """2-D samples (and optionally the real data and mode centres) as a scatter plot."""
    points = checks.array("points", points, "(N, 2)")
    reference = None if reference is None else checks.array("reference", reference, "(N, 2)")
    centres = None if centres is None else checks.array("centres", centres, "(N, 2)")
    lim = None if lim is None else checks.number("lim", lim, 0.0, low_open=True)
    fig, ax = _figure(ax, (4.2, 4.2))
    if reference is not None:
        ax.scatter(reference[:, 0], reference[:, 1], s=3, alpha=0.25, color="tab:gray", label="real")
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, color="tab:blue", label="generated")
    if centres is not None:
        ax.scatter(centres[:, 0], centres[:, 1], s=40, marker="x", color="tab:red", label="mode centres")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set(title=title, xlabel="x1", ylabel="x2")
    fig.tight_layout()
    return fig


def save_grid_png(images, path, rows=None, cols=None):
    """Write a tiled grid of images in [-1, 1] to a PNG file (no axes)."""
    import imageio.v2 as imageio

    canvas = tile(images, rows, cols)
    imageio.imwrite(str(path), np.round(canvas * 255).astype(np.uint8))
    return Path(path)


def save_gif(frames, path, duration=0.25, scale=3, labels=None):
    """Write a GIF from a list of tiled frames (arrays in [0, 1]); returns the path.

    Each frame is enlarged ``scale`` times (nearest neighbour) so digits are visible
    in a browser; ``labels`` (for example "epoch 3") are drawn in the corner.
    """
    import imageio.v2 as imageio

    if not isinstance(frames, (list, tuple)) or not frames:
        raise checks.BadArgument(f"frames is empty or not a list of images: pass the frames of at least one trained "
                                 f"epoch; got {reprlib.repr(frames)}.")
    duration, scale = checks.number("duration", duration, 0.0, low_open=True), checks.count("scale", scale)
    labels = None if labels is None else _labels("labels", labels, len(frames), "frame")
    out = []
    for i, frame in enumerate(frames):
        f = checks.array(f"frames[{i}]", frame, "(H, W)", "(H, W, C)")
        f = np.kron(f, np.ones((scale, scale) + (1,) * (f.ndim - 2), dtype=np.float32))
        img = np.round(np.clip(f, 0, 1) * 255).astype(np.uint8)
        if labels is not None:
            img = _stamp(img, labels[i])
        out.append(img)
    # Hold the last frame longer, so the final result can be seen.
    durations = [duration] * (len(out) - 1) + [max(1.5, duration)]
    # imageio wants a plain number for a one-frame GIF.
    imageio.mimsave(str(path), out, duration=durations if len(out) > 1 else durations[0], loop=0)
    return Path(path)


def _stamp(img, text):
    """Draw ``text`` onto a uint8 image with matplotlib's Agg renderer."""
    fig = plt.figure(figsize=(img.shape[1] / 100, img.shape[0] / 100), dpi=100)
    fig.figimage(img if img.ndim == 3 else np.stack([img] * 3, -1), resize=False)
    fig.text(0.01, 0.99, text, color="red", fontsize=8, va="top", ha="left",
             bbox=dict(facecolor="white", alpha=0.7, pad=1, edgecolor="none"))
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgba


def show_gif(path):
    """Display a GIF inline in a notebook (returns an IPython Image)."""
    from IPython.display import Image

    if not isinstance(path, (str, os.PathLike)) or not Path(path).is_file():
        raise checks.BadArgument(f"path must name an existing GIF file; got {path!r}.")
    return Image(filename=str(path))
