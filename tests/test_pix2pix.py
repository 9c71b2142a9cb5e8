"""Lesson 06's package code: the paired digit tasks (digit_tasks), the U-Net and conditional
PatchGAN, the Pix2Pix trainer (on one device, two replicas and in float16), bad arguments, its
report, and the command line's pix2pix run."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons
from gan_lessons import checks, data, digit_tasks, metrics, pix2pix
from gan_lessons.__main__ import main


@pytest.fixture(scope="module")
def digits():
    x, y = data.load_mnist("train", source="bundled", limit=256, verbose=False)
    return x, y


def _square():
    """One image: a filled 10x10 square of ink on paper."""
    x = -np.ones((1, 28, 28, 1), np.float32)
    x[0, 9:19, 9:19] = 1.0
    return x


def test_sketch_is_an_outline_in_black_and_white():
    edges = digit_tasks.sketch(_square())
    assert set(np.unique(edges)) == {-1.0, 1.0}
    assert edges[0, 14, 14, 0] == -1.0  # the inside of the square is not an edge
    assert edges[0, 9, 14, 0] == 1.0 and edges[0, 14, 8, 0] == 1.0  # its border is
    assert np.all(edges[0, :6] == -1.0)  # far from any ink: paper
    assert np.all(digit_tasks.sketch(-np.ones((2, 28, 28, 1))) == -1.0)  # blank paper has no edges


def test_complete_hides_the_lower_half_only(digits):
    x, _ = digits
    inputs, targets = digit_tasks.make_pairs(x[:5], "complete")
    assert np.array_equal(targets, x[:5])
    assert np.all(inputs[:, 14:] == digit_tasks.HIDDEN)
    assert np.array_equal(inputs[:, :14], x[:5, :14])


def test_pairs_save_and_load_the_contract_arrays(digits, tmp_path):
    x, y = digits
    pairs = digit_tasks.Pairs(*digit_tasks.make_pairs(x[:7]), y[:7])
    pairs.save(tmp_path / "p.npz")
    archive = np.load(tmp_path / "p.npz")
    assert set(archive.files) == {"inputs", "targets", "labels"}
    loaded = digit_tasks.Pairs.load(tmp_path / "p.npz")
    assert np.array_equal(loaded.targets, x[:7]) and np.array_equal(loaded.labels, y[:7])
    np.savez(tmp_path / "bad.npz", inputs=x[:3], targets=x[:3])
    with pytest.raises(checks.BadArgument, match=r"bad\.npz has no array labels; it needs inputs, targets, labels\.$"):
        digit_tasks.Pairs.load(tmp_path / "bad.npz")


def _one_input_critic():
    x = keras.Input((28, 28, 1))
    return keras.Model(x, keras.layers.Conv2D(1, 4, strides=4)(x), name="one_input")


def _small_generator():
    x = keras.Input((28, 28, 1))
    return keras.Model(x, keras.layers.MaxPooling2D()(x), name="halver")


@pytest.mark.parametrize("call, message", [
    (lambda x: digit_tasks.check_pairs(np.zeros((2, 32, 32, 1))),
     "inputs must be an array of shape (N, 28, 28, 1) or (N, 28, 28); got shape (2, 32, 32, 1)."),
    (lambda x: digit_tasks.check_pairs(x[:2] * 255),
     "inputs must hold finite values in [-1, 1] (scale images with x / 127.5 - 1); got values from -255 to 255."),
    (lambda x: digit_tasks.check_pairs(x[:2], x[:3]), "inputs has 2 images but targets has 3; they must match."),
    (lambda x: digit_tasks.check_pairs("digits"), "inputs must be an array of shape (N, 28, 28, 1) or (N, 28, 28); "
                                                  "got 'digits'."),
    (lambda x: digit_tasks.make_pairs(x[:2], "colour"), "task must be one of 'sketch', 'complete'; got 'colour'."),
    (lambda x: digit_tasks.load_pairs(task="colour"), "task must be one of 'sketch', 'complete'; got 'colour'."),
    (lambda x: digit_tasks.sketch(x[:2, :, :, 0]), "images must be an array of shape (N, H, W, 1); got shape "
                                                   "(2, 28, 28)."),
    (lambda x: digit_tasks.hide_lower_half(x[0]), "images must be an array of shape (N, H, W, 1); got shape "
                                                  "(28, 28, 1)."),
    (lambda x: digit_tasks.Pairs(x[:3], x[:3], [1, 2]), "labels must hold 3 whole numbers, one per image; got 2 of "
                                                        "type int64."),
    (lambda x: digit_tasks.Pairs(x[:2], x[:2], [1.5, 2.0]), "labels must hold 2 whole numbers, one per image; got 2 "
                                                            "of type float64."),
    (lambda x: digit_tasks.Pairs(x[:2], x[:2], [1, 2]).head(0), "n must be a positive integer; got 0."),
    (lambda x: pix2pix.unet_generator(dropout=1.0), "dropout must be a number in [0, 1); got 1.0."),
    (lambda x: pix2pix.unet_generator(skips="yes"), "skips must be one of True, False; got 'yes'."),
    (lambda x: pix2pix.conditional_patchgan(filters=0), "filters must be a positive integer; got 0."),
    (lambda x: pix2pix.Pix2Pix(pix2pix.unet_generator(4), pix2pix.conditional_patchgan(4), l1_weight=-1),
     "l1_weight must be a number in [0, inf); got -1."),
    (lambda x: pix2pix.Pix2Pix(pix2pix.unet_generator(4), pix2pix.conditional_patchgan(4), l1_weight=0, gan_weight=0),
     "l1_weight and gan_weight are both 0, which leaves the generator nothing to learn; make at least one positive."),
    (lambda x: pix2pix.Pix2Pix(pix2pix.unet_generator(4), _one_input_critic()),
     "the discriminator must take two inputs, (input, output); 'one_input' takes 1."),
    (lambda x: pix2pix.Pix2Pix(_small_generator(), pix2pix.conditional_patchgan(4, name="d")),
     "the generator 'halver' makes images of shape (14, 14, 1), but the discriminator 'd' takes inputs of shape "
     "(28, 28, 1); build them for the same image shape."),
    (lambda x: pix2pix.sharpness(x[0]), "images must be an array of shape (N, H, W, C); got shape (28, 28, 1)."),
    (lambda x: pix2pix.translation_report(pix2pix.unet_generator(4), x[:4], x[:4], [1, 2, 3]),
     "labels must hold 4 whole numbers, one per image; got 3 of type int64."),
])
def test_bad_input_gets_one_sentence(digits, call, message):
    with pytest.raises(checks.BadArgument, match="^" + re.escape(message) + "$"):
        call(digits[0])


@pytest.mark.parametrize("skips", [True, False])
def test_builders_shapes(skips):
    g = pix2pix.unet_generator(8, skips=skips)
    d = pix2pix.conditional_patchgan(8)
    assert g.output_shape == (None, 28, 28, 1)
    assert d.output_shape == (None, 7, 7, 1)
    assert any(isinstance(layer, keras.layers.Concatenate) for layer in g.layers) == skips


def _window(discriminator, row, col):
    """Rows and columns of the pair that logit (row, col) depends on: where its gradient is not zero."""
    gan_lessons.set_seed(0)
    pair = [tf.constant(np.random.default_rng(i).uniform(-1, 1, (1, 28, 28, 1)), tf.float32) for i in range(2)]
    with tf.GradientTape() as tape:
        tape.watch(pair)
        logit = discriminator(pair, training=False)[0, row, col, 0]
    touched = sum(np.abs(g.numpy()[0, ..., 0]) for g in tape.gradient(logit, pair)) > 0
    rows, cols = np.flatnonzero(touched.any(axis=1)), np.flatnonzero(touched.any(axis=0))
    return (rows.min(), rows.max()), (cols.min(), cols.max())


def test_patchgan_logit_sees_a_26x26_window_of_the_pair():
    gan_lessons.set_seed(0)
    d = pix2pix.conditional_patchgan(8)
    assert _window(d, 3, 3) == ((1, 26), (1, 26))  # 26x26 at the centre, as the docstring says
    assert _window(d, 0, 0) == ((0, 14), (0, 14))  # clipped by the border at a corner
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in d.layers) == 2  # not instance norm


def _trainer(eager=True, **kwargs):
    gan_lessons.set_seed(0)
    trainer = pix2pix.Pix2Pix(pix2pix.unet_generator(8), pix2pix.conditional_patchgan(8), **kwargs)
    trainer.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    trainer.run_eagerly = eager  # a few steps: eagerly unless asked (conftest.py says why)
    return trainer


def test_training_lowers_the_l1_error(digits):
    inputs, targets = digit_tasks.make_pairs(digits[0])
    trainer = _trainer(eager=False)  # 16 steps: quicker compiled
    dataset, steps = data.make_dataset(inputs, targets, batch_size=32)
    history = trainer.fit(dataset, epochs=4, steps_per_epoch=steps, verbose=0).history
    assert history["l1"][-1] < 0.7 * history["l1"][0]
    assert all(np.isfinite(v).all() for v in history.values())


def test_l1_alone_leaves_the_discriminator_untouched(digits):
    inputs, targets = digit_tasks.make_pairs(digits[0][:64])
    trainer = _trainer(gan_weight=0.0)
    before = [np.array(w) for w in trainer.discriminator.weights]
    dataset, _ = data.make_dataset(inputs, targets, batch_size=32)
    logs = trainer.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0).history
    assert logs["d_loss"] == [0.0]
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, trainer.discriminator.weights))


class _ZeroScale(keras.optimizers.SGD):
    """SGD whose scale_loss scales every loss to 0: the weights it trains stay as they are."""

    def scale_loss(self, loss):
        return 0.0 * loss


@pytest.mark.parametrize("frozen", ["d_optimizer", "g_optimizer"])
def test_each_player_takes_its_gradients_of_its_optimizers_scaled_loss(digits, frozen):
    """Where the command line acts (several replicas, float16): optimizer.scale_loss."""
    trainer = pix2pix.Pix2Pix(pix2pix.unet_generator(4), pix2pix.conditional_patchgan(4))
    trainer.compile(**{"d_optimizer": keras.optimizers.SGD(0.1), "g_optimizer": keras.optimizers.SGD(0.1),
                       frozen: _ZeroScale(0.1)})
    players = {"d_optimizer": trainer.discriminator, "g_optimizer": trainer.generator}
    before = {name: [np.array(w) for w in net.trainable_weights] for name, net in players.items()}
    x = digits[0][:4]
    trainer.train_step((tf.constant(digit_tasks.sketch(x)), tf.constant(x)))
    for name, net in players.items():
        same = [np.array_equal(b, np.array(w)) for b, w in zip(before[name], net.trainable_weights)]
        assert all(same) if name == frozen else not any(same), name


# ------------------------------------------------------- several devices, float16


def test_translation_report_of_a_perfect_translator(digits):
    x, y = digits
    identity = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Identity()])
    report = pix2pix.translation_report(identity, x[:100], x[:100], y[:100])
    assert report["l1_error"] == 0.0
    assert report["fid"] == pytest.approx(0.0, abs=1e-6)
    assert report["sharpness"] == pytest.approx(report["sharpness_truth"])
    assert report["class_kept"] == pytest.approx(np.mean(metrics.classify(x[:100]) == y[:100]))


def test_cli_quick_run_writes_the_contract_files(tmp_path, capsys):
    out = tmp_path / "p2p"
    assert main(["train", "pix2pix", "--out", str(out), "--quick"]) == 0
    for name in ("generator.keras", "test_pairs.npz", "samples.png", "history.json", "run.json"):
        assert (out / name).is_file(), name
    test = np.load(out / "test_pairs.npz")
    assert set(test.files) == {"inputs", "targets", "labels"}
    generator = metrics.single_input(keras.saving.load_model(out / "generator.keras", compile=False))
    images = np.asarray(generator(test["inputs"][:3]))
    assert images.shape == (3, 28, 28, 1) and images.min() >= -1 and images.max() <= 1
    capsys.readouterr()
    assert main(["evaluate", str(out), "--n", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "pix2pix" and result["n"] == 50
    for key in ("l1_error", "class_kept", "fid", "sharpness", "sharpness_truth"):
        assert isinstance(result[key], float), key
    np.savez(out / "test_pairs.npz", inputs=test["inputs"])
    assert main(["evaluate", str(out)]) == 2
    assert "has no array targets, labels" in capsys.readouterr().err
