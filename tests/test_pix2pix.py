"""Lesson 06's package code: the paired digit tasks, the U-Net and conditional PatchGAN,
the Pix2Pix trainer and its report, and the command line's pix2pix run."""

import json

import keras
import numpy as np
import pytest

import gan_lessons
from gan_lessons import data, metrics, pix2pix
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
    edges = pix2pix.sketch(_square())
    assert set(np.unique(edges)) == {-1.0, 1.0}
    assert edges[0, 14, 14, 0] == -1.0  # the inside of the square is not an edge
    assert edges[0, 9, 14, 0] == 1.0 and edges[0, 14, 8, 0] == 1.0  # its border is
    assert np.all(edges[0, :6] == -1.0)  # far from any ink: paper
    assert np.all(pix2pix.sketch(-np.ones((2, 28, 28, 1))) == -1.0)  # blank paper has no edges


def test_complete_hides_the_lower_half_only(digits):
    x, _ = digits
    inputs, targets = pix2pix.make_pairs(x[:5], "complete")
    assert np.array_equal(targets, x[:5])
    assert np.all(inputs[:, 14:] == pix2pix.HIDDEN)
    assert np.array_equal(inputs[:, :14], x[:5, :14])


def test_pairs_save_and_load_the_contract_arrays(digits, tmp_path):
    x, y = digits
    pairs = pix2pix.Pairs(*pix2pix.make_pairs(x[:7]), y[:7])
    pairs.save(tmp_path / "p.npz")
    archive = np.load(tmp_path / "p.npz")
    assert set(archive.files) == {"inputs", "targets", "labels"}
    loaded = pix2pix.Pairs.load(tmp_path / "p.npz")
    assert np.array_equal(loaded.targets, x[:7]) and np.array_equal(loaded.labels, y[:7])
    np.savez(tmp_path / "bad.npz", inputs=x[:3], targets=x[:3])
    with pytest.raises(ValueError, match="has no array labels"):
        pix2pix.Pairs.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("call, words", [
    (lambda x: pix2pix.check_pairs(np.zeros((2, 32, 32, 1))), "inputs must have shape"),
    (lambda x: pix2pix.check_pairs(x[:2] * 255), "inputs must hold finite values in [-1, 1]"),
    (lambda x: pix2pix.check_pairs(x[:2], x[:3]), "inputs has 2 images but targets has 3"),
    (lambda x: pix2pix.make_pairs(x[:2], "colour"), "task must be one of"),
    (lambda x: pix2pix.unet_generator(dropout=1.0), "dropout must be a number in"),
])
def test_bad_input_gets_one_sentence(digits, call, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        call(digits[0])


@pytest.mark.parametrize("skips", [True, False])
def test_builders_shapes(skips):
    g = pix2pix.unet_generator(8, skips=skips)
    d = pix2pix.conditional_patchgan(8)
    assert g.output_shape == (None, 28, 28, 1)
    assert d.output_shape == (None, 7, 7, 1)
    assert any(isinstance(layer, keras.layers.Concatenate) for layer in g.layers) == skips


def _trainer(**kwargs):
    gan_lessons.set_seed(0)
    trainer = pix2pix.Pix2Pix(pix2pix.unet_generator(8), pix2pix.conditional_patchgan(8), **kwargs)
    trainer.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    return trainer


def test_training_lowers_the_l1_error(digits):
    inputs, targets = pix2pix.make_pairs(digits[0])
    trainer = _trainer()
    dataset, steps = data.make_dataset(inputs, targets, batch_size=32)
    history = trainer.fit(dataset, epochs=4, steps_per_epoch=steps, verbose=0).history
    assert history["l1"][-1] < 0.7 * history["l1"][0]
    assert all(np.isfinite(v).all() for v in history.values())


def test_l1_alone_leaves_the_discriminator_untouched(digits):
    inputs, targets = pix2pix.make_pairs(digits[0][:64])
    trainer = _trainer(gan_weight=0.0)
    before = [np.array(w) for w in trainer.discriminator.weights]
    dataset, _ = data.make_dataset(inputs, targets, batch_size=32)
    logs = trainer.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0).history
    assert logs["d_loss"] == [0.0]
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, trainer.discriminator.weights))


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
