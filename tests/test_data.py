import numpy as np
import pytest

from gan_lessons import data


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


def test_auto_falls_back_to_bundled_with_one_line(monkeypatch, capsys):
    def offline():
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(data, "_keras_dataset", lambda name: offline())
    x, y = data.load_mnist("train")
    out = capsys.readouterr()
    assert x.shape == (4000, 28, 28, 1)
    assert out.out.count("\n") == 1 and "bundled" in out.out
    assert out.err == ""


def test_full_source_without_network_says_what_to_do(monkeypatch):
    def offline(name):
        raise Exception("URL fetch failure")

    monkeypatch.setattr(data, "_keras_dataset", offline)
    with pytest.raises(data.DatasetUnavailable, match="bundled"):
        data.load_mnist(source="full")
    with pytest.raises(data.DatasetUnavailable, match="not bundled"):
        data.load_fashion_mnist()


def test_auto_uses_full_mnist_when_keras_has_it(monkeypatch, capsys):
    fake = ((np.zeros((6, 28, 28), np.uint8), np.arange(6)), (np.full((2, 28, 28), 255, np.uint8), np.arange(2)))
    monkeypatch.setattr(data, "_keras_dataset", lambda name: fake)
    x, y = data.load_mnist("test")
    assert x.shape == (2, 28, 28, 1) and np.all(x == 1.0)
    assert "full MNIST" in capsys.readouterr().out


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


def test_make_dataset_batches_and_checks_batch_size():
    x, y = data.load_mnist("test", source="bundled", verbose=False)
    images, labels = next(iter(data.make_dataset(x, y, batch_size=32)))
    assert images.shape == (32, 28, 28, 1) and labels.shape == (32,)
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataset(x, batch_size=len(x) + 1)
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataset(x, batch_size=0)


def test_make_dataset_passes_give_each_image_once_per_pass_in_new_orders():
    images = np.arange(40, dtype=np.float32).reshape(40, 1)
    batches = [b.numpy().ravel() for b in data.make_dataset(images, batch_size=20, passes=3, seed=1)]
    assert len(batches) == 6  # 3 passes of 40 images in batches of 20
    seen = np.concatenate(batches)
    assert np.array_equal(np.bincount(seen.astype(int)), np.full(40, 3))  # every image once per pass
    passes = seen.reshape(3, 40)
    assert not np.array_equal(passes[0], passes[1])  # each pass in its own order
    with pytest.raises(ValueError, match="passes must be a positive integer"):
        data.make_dataset(images, batch_size=20, passes=0)
    with pytest.raises(ValueError, match="x 2 passes"):
        data.make_dataset(images, batch_size=81, passes=2)


def test_round_trip_to_uint8():
    raw = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    assert np.array_equal(data.to_uint8(data.to_unit_range(raw))[..., 0], raw)


def test_toy_distributions():
    points, centres = data.gaussian_ring(2000, modes=8, radius=2.0, std=0.02)
    assert points.shape == (2000, 2) and centres.shape == (8, 2)
    nearest = np.min(np.linalg.norm(points[:, None] - centres[None], axis=-1), axis=1)
    assert nearest.max() < 0.02 * 6
    _, grid_centres = data.gaussian_grid(100, side=5)
    assert grid_centres.shape == (25, 2)
