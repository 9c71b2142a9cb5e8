"""Data: MNIST (bundled or full), the pipelines that feed fit, toy distributions."""

import keras
import numpy as np
import pytest

from gan_lessons import data, runtime


def _offline():
    raise Exception("URL fetch failure: Name or service not known")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Keras's MNIST loaders fail here as they do offline, so no test depends on whether this
    machine reaches the network or has the full MNIST cached; a test that needs the full set
    puts a small stand-in in their place."""
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _offline)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", _offline)
    monkeypatch.delenv(runtime.MORE_ENV, raising=False)


def _full_mnist(monkeypatch):
    """A stand-in for the full MNIST as Keras loads it: 6 black training digits, 2 white test digits."""
    fake = ((np.zeros((6, 28, 28), np.uint8), np.arange(6)), (np.full((2, 28, 28), 255, np.uint8), np.arange(2)))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: fake)


def test_bundled_train_and_test_splits():
    x, y = data.load_mnist("train", source="bundled", verbose=False)
    xt, yt = data.load_mnist("test", source="bundled", verbose=False)
    assert x.shape == (4000, 28, 28, 1) and xt.shape == (1000, 28, 28, 1)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == -1.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    assert np.all(np.bincount(yt) == 100)
    # The held-out digits are not among the training digits.
    train_keys = {a.tobytes() for a in x}
    assert not any(a.tobytes() in train_keys for a in xt)


def test_bundled_split_is_shuffled_not_class_ordered():
    _, y = data.load_mnist("train", source="bundled", verbose=False)
    assert len(np.unique(y[:100])) == 10


def test_limit_keeps_classes_balanced():
    x, y = data.load_mnist("train", source="bundled", limit=200, verbose=False)
    assert len(x) == 200 and np.all(np.bincount(y) == 20)


def test_auto_is_the_bundled_subset_with_one_line(capsys, monkeypatch):
    x, y = data.load_mnist("train")
    out = capsys.readouterr()
    assert x.shape == (4000, 28, 28, 1) and data.mnist_source() == "bundled"
    assert out.out == "Using bundled MNIST subset (train split, 4,000 digits).\n" and out.err == ""
    monkeypatch.setenv(runtime.MORE_ENV, "1")  # asked for the full set, which cannot be had here
    assert data.load_mnist("train")[0].shape == (4000, 28, 28, 1) and data.mnist_source() == "bundled"
    assert capsys.readouterr().out == ("Using bundled MNIST subset (train split, 4,000 digits; full MNIST not "
                                       "reachable).\n")


def test_full_source_without_network_says_what_to_do():
    with pytest.raises(data.DatasetUnavailable, match="bundled"):
        data.load_mnist(source="full")
    with pytest.raises(data.DatasetUnavailable, match="not bundled"):
        data.load_fashion_mnist()


def test_auto_uses_full_mnist_only_when_asked_for(monkeypatch, capsys):
    """Online too, the lessons train on the bundled digits (their text's numbers come from them); the full MNIST
    is the opt-in GAN_LESSONS_MORE=1, or source="full"."""
    _full_mnist(monkeypatch)
    assert data.load_mnist("test", verbose=False)[0].shape == (1000, 28, 28, 1) and data.mnist_source() == "bundled"
    assert data.load_mnist("test", source="full", verbose=False)[0].shape == (2, 28, 28, 1)
    monkeypatch.setenv(runtime.MORE_ENV, "1")
    x, y = data.load_mnist("test")
    assert x.shape == (2, 28, 28, 1) and np.all(x == 1.0) and data.mnist_source() == "full"
    assert capsys.readouterr().out == "Using full MNIST (test split, 2 digits).\n"
    assert data.load_dataset("mnist", "all", verbose=False)[0].shape == (8, 28, 28, 1)
    assert data.load_mnist("test", source="bundled", verbose=False)[0].shape == (1000, 28, 28, 1)  # still there


@pytest.mark.parametrize(
    "kwargs, name",
    [({"split": "validation"}, "split"), ({"source": "web"}, "source"), ({"limit": 0}, "limit")],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        data.load_mnist(verbose=False, **kwargs)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_dataset("cifar10")


def test_make_dataset_batches_and_checks_its_arguments():
    x, y = data.load_mnist("test", source="bundled", verbose=False)
    dataset, steps = data.make_dataset(x, y, batch_size=32)
    images, labels = next(iter(dataset))
    assert images.shape == (32, 28, 28, 1) and labels.shape == (32,) and steps == 1000 // 32
    for bad in (len(x) + 1, 0, 2.0, True, "32"):
        with pytest.raises(ValueError, match="batch_size"):
            data.make_dataset(x, batch_size=bad)
    with pytest.raises(ValueError, match="per_step must be a positive integer"):
        data.make_dataset(x, batch_size=8, per_step=0)
    with pytest.raises(ValueError, match="labels must be an array of 1000 items, one per image; got 3 item"):
        data.make_dataset(x, y[:3], batch_size=8)
    assert data.make_dataset(x, batch_size=np.int64(8))[1] == 125  # NumPy integers are integers


def test_each_epoch_is_one_pass_in_a_new_order():
    images = np.arange(40, dtype=np.float32).reshape(40, 1)
    dataset, steps = data.make_dataset(images, batch_size=10, seed=1)
    assert steps == 4
    stream = iter(dataset)
    epochs = [np.concatenate([next(stream).numpy().ravel() for _ in range(steps)]) for _ in range(3)]
    assert all(np.array_equal(np.sort(e), np.arange(40)) for e in epochs)  # every image once an epoch
    assert len({tuple(e) for e in epochs}) == 3  # in a new order each epoch


def test_per_step_stacks_batches_and_keeps_the_steps_of_an_epoch():
    images = np.arange(40, dtype=np.float32).reshape(40, 1)
    dataset, steps = data.make_dataset(images, batch_size=10, per_step=3, seed=1)
    assert steps == 4  # as many generator steps as batches of 10
    stream = iter(dataset)
    batches = [next(stream).numpy() for _ in range(steps)]
    assert batches[0].shape == (3, 10, 1)  # three critic steps, ten images each
    seen = np.concatenate([b.ravel() for b in batches]).astype(int)
    assert np.array_equal(np.bincount(seen, minlength=40), np.full(40, 3))  # an epoch reads the data 3 times


def test_unpaired_dataset_draws_the_domains_independently():
    a = np.arange(12, dtype=np.float32).reshape(12, 1)
    dataset, steps = data.make_unpaired_dataset(a, a + 100, batch_size=4, seed=0)
    assert steps == 3
    batch_a, batch_b = next(iter(dataset))
    assert not np.array_equal(batch_a.numpy() + 100, batch_b.numpy())  # row i of A is not paired with row i of B
    with pytest.raises(ValueError, match="larger than the smaller domain"):
        data.make_unpaired_dataset(a, a[:3], batch_size=4)


def test_toy_distributions():
    points, centres = data.gaussian_ring(2000, modes=8, radius=2.0, std=0.02)
    assert points.shape == (2000, 2) and centres.shape == (8, 2)
    nearest = np.min(np.linalg.norm(points[:, None] - centres[None], axis=-1), axis=1)
    assert nearest.max() < 0.02 * 6
    _, grid_centres = data.gaussian_grid(100, side=5)
    assert grid_centres.shape == (25, 2)


def test_the_s_curve_is_an_s_within_its_box():
    from gan_lessons import data

    points = data.s_curve(4000, noise=0.0, seed=0)
    assert points.shape == (4000, 2) and points.dtype == np.float32
    assert np.all(np.abs(points[:, 0]) <= 1 + 1e-6) and np.all(np.abs(points[:, 1]) <= 2 + 1e-6)
    np.testing.assert_allclose(points[:, 0] ** 2 + (np.abs(points[:, 1]) - 1) ** 2, 1.0, atol=1e-5)  # two arcs
