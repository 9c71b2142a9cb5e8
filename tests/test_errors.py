"""Bad input to the data, figure, runtime and loss functions gets one sentence that names the
argument, its value and what is allowed, not a traceback from deep inside NumPy or TensorFlow."""

import numpy as np
import pytest

from gan_lessons import checks, data, losses, plots, runtime

IMAGES = np.zeros((4, 28, 28, 1), "float32")
HISTORY = {"d_loss": [1.0, 0.5], "g_loss": [2.0, 1.0], "D(x)": [0.5, 0.6]}


def _critic(x, training=False):
    return x[:, :1]


@pytest.mark.parametrize("call, message", [
    # data
    (lambda: data.gaussian_ring(-5), "n must be a positive integer; got -5."),
    (lambda: data.gaussian_ring(10, modes=0), "modes must be a positive integer; got 0."),
    (lambda: data.gaussian_ring(10, radius=-1.0), "radius must be a number in (0, inf); got -1.0."),
    (lambda: data.gaussian_grid(10, spacing="2"), "spacing must be a number in (0, inf); got '2'."),
    (lambda: data.gaussian_grid(10, std=-0.1), "std must be a number in [0, inf); got -0.1."),
    (lambda: data.gaussian_grid(10, seed=-1), "seed must be an integer from 0 to 2**32 - 1; got -1."),
    (lambda: data.s_curve(2.5), "n must be a positive integer; got 2.5."),
    (lambda: data.s_curve(10, seed=1.5), "seed must be an integer from 0 to 2**32 - 1; got 1.5."),
    (lambda: data.to_unit_range(np.zeros((28, 28))),
     "images_uint8 must be an array of shape (N, H, W) or (N, H, W, C); got shape (28, 28)."),
    (lambda: data.balanced(IMAGES, np.arange(3), 2), "y must be an array of 4 items, one per image; got 3 item(s)."),
    (lambda: data.balanced(IMAGES, np.arange(4), 0), "limit must be a positive integer; got 0."),
    (lambda: data.load_fashion_mnist(limit=-1), "limit must be a positive integer; got -1."),
    (lambda: data.load_dataset("cifar10"), "name must be one of 'mnist', 'fashion_mnist'; got 'cifar10'."),
    (lambda: data.make_dataset(None), "images must be a non-empty array; got None."),
    (lambda: data.make_dataset(IMAGES, batch_size=2, seed=None), "seed must be an integer from 0 to 2**32 - 1"),
    (lambda: data.make_unpaired_dataset(IMAGES, [], batch_size=2), "images_b must be a non-empty array; got 0 item"),
    # plots
    (lambda: plots.plot_losses(HISTORY, keys=["x"]),
     "keys must be a non-empty list of names in the history ('d_loss', 'g_loss', 'D(x)'); got ['x']."),
    (lambda: plots.plot_losses(HISTORY, keys="d_loss"), "keys must be a non-empty list of names"),
    (lambda: plots.plot_losses({"D(x)": [0.5]}),
     "keys must be a non-empty list of names in the history ('D(x)'); got []."),
    (lambda: plots.plot_losses([1.0, 0.5]), "history must be a Keras History or a dict of lists; got [1.0, 0.5]."),
    (lambda: plots.tile(IMAGES, pad=-1), "pad must be a non-negative integer; got -1."),
    (lambda: plots.tile(None), "images must be an array of shape (N, H, W) or (N, H, W, C); got None."),
    (lambda: plots.image_grid(IMAGES, "four", rows=2, row_labels=["a"]),
     "row_labels must hold 2 labels, one per row; got 1: ['a']."),
    (lambda: plots.image_grid(IMAGES, "four", cols=4, col_labels="abc"), "col_labels must hold 4 labels, one per"),
    (lambda: plots.image_grid(IMAGES, "four", size=0), "size must be a number in (0, inf); got 0."),
    (lambda: plots.scatter_2d(np.zeros((5, 3)), "five"), "points must be an array of shape (N, 2); got shape (5, 3)."),
    (lambda: plots.scatter_2d(np.zeros((5, 2)), "five", centres=[1, 2]), "centres must be an array of shape (N, 2)"),
    (lambda: plots.scatter_2d(np.zeros((5, 2)), "five", lim=-2), "lim must be a number in (0, inf); got -2."),
    (lambda: plots.save_gif([np.zeros((8, 8))], "x.gif", scale=0), "scale must be a positive integer; got 0."),
    (lambda: plots.save_gif([np.zeros((8, 8))], "x.gif", duration=-1), "duration must be a number in (0, inf)"),
    (lambda: plots.save_gif([np.zeros((8, 8))] * 2, "x.gif", labels=["one"]),
     "labels must hold 2 labels, one per frame; got 1: ['one']."),
    (lambda: plots.save_gif([np.zeros(8)], "x.gif"),
     "frames[0] must be an array of shape (H, W) or (H, W, C); got shape (8,)."),
    (lambda: plots.save_gif(None, "x.gif"),
     "frames is empty or not a list of images: pass the frames of at least one trained epoch; got None."),
    (lambda: plots.show_gif("no-such.gif"), "path must name an existing GIF file; got 'no-such.gif'."),
    # runtime
    (lambda: runtime.set_seed(2**32), "seed must be an integer from 0 to 2**32 - 1; got 4294967296."),
    (lambda: runtime.setup(seed="0"), "seed must be an integer from 0 to 2**32 - 1; got '0'."),
    (lambda: runtime.run_dir(None), "name must be a non-empty folder name; got None."),
    (lambda: runtime.run_dir("lesson", root=""), "root must be a non-empty folder name; got ''."),
    # losses
    (lambda: losses.generator_loss("x"),
     "fake_logits must be a non-empty numeric tensor; got a string tensor of shape ()."),
    (lambda: losses.minimax_generator_loss(None), "fake_logits must be a non-empty numeric tensor; got None."),
    (lambda: losses.discriminator_loss(np.zeros((0, 1)), np.zeros((2, 1))),
     "real_logits must be a non-empty numeric tensor; got a float64 tensor of shape (0, 1)."),
    (lambda: losses.discriminator_loss([[1.0]], [[0.0]], real_label=1.5),
     "real_label must be a number in [0, 1]; got 1.5."),
    (lambda: losses.critic_loss([[1.0]], [["a"]]), "fake_scores must be a non-empty numeric tensor"),
    (lambda: losses.wasserstein_generator_loss([True]),
     "fake_scores must be a non-empty numeric tensor; got a bool tensor of shape (1,)."),
    (lambda: losses.lsgan_discriminator_loss([], [1.0]), "real_scores must be a non-empty numeric tensor"),
    (lambda: losses.lsgan_generator_loss(object()), "fake_scores must be a non-empty numeric tensor; got <object"),
    (lambda: losses.cycle_loss(IMAGES, IMAGES[0]),
     "reconstructed must be a non-empty numeric tensor of shape (4, 28, 28, 1); got a float32 tensor of shape "
     "(28, 28, 1)."),
    (lambda: losses.identity_loss(IMAGES, IMAGES, weight=-1), "weight must be a number in [0, inf); got -1."),
    (lambda: losses.gradient_penalty("critic", IMAGES, IMAGES), "critic must be a network (a callable); got 'critic'."),
    (lambda: losses.gradient_penalty(_critic, IMAGES, IMAGES[:2]),
     "fake must be a non-empty numeric tensor of shape (4, 28, 28, 1); got a float32 tensor of shape (2, 28, 28, 1)."),
    (lambda: losses.gradient_penalty(_critic, IMAGES, IMAGES, epsilon=[0.5]),
     "epsilon must be a non-empty numeric tensor of shape (4,); got a float32 tensor of shape (1,)."),
    (lambda: losses.gradient_penalty(_critic, IMAGES, IMAGES, weight=None), "weight must be a number"),
])
def test_bad_arguments_get_one_sentence(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing a refused call might write lands in the repository
    with pytest.raises(checks.BadArgument) as info:
        call()
    text = str(info.value)
    assert text.startswith(message) and text.endswith(".") and "\n" not in text
    assert not list(tmp_path.iterdir())  # refused before writing anything
