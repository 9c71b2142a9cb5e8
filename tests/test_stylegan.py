"""Lesson 08's package code: modulation and demodulation, AdaIN, noise, truncation, style
mixing, the trainer's step, and the command line's stylegan run."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons  # noqa: F401
from gan_lessons import checks, data, metrics, stylegan
from gan_lessons.__main__ import main


@pytest.fixture(scope="module")
def generator():
    gan_lessons.set_seed(0)
    return stylegan.style_generator(stylegan.mapping_network(16, 8, 2), stylegan.synthesis_network(8, (8, 8, 4)))


def test_modulated_conv_equals_a_convolution_with_each_sample_s_own_weights():
    rng = np.random.default_rng(0)
    layer = stylegan.ModulatedConv2D(5, 3)
    x = rng.standard_normal((3, 7, 7, 4)).astype("float32")
    w = rng.standard_normal((3, 6)).astype("float32")
    out = layer([x, w]).numpy()
    s = layer.style(w).numpy()
    kernel = layer.kernel.numpy()
    for b in range(3):
        modulated = kernel * s[b][None, None, :, None]  # w'_kio = s_i w_kio
        demodulated = modulated / np.sqrt((modulated**2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)
        expected = tf.nn.conv2d(x[b:b + 1], demodulated, 1, "SAME").numpy()[0] + layer.bias.numpy()
        np.testing.assert_allclose(out[b], expected, rtol=1e-4, atol=1e-4)


def test_demodulation_keeps_unit_variance_inputs_at_unit_variance():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 32, 32, 16)).astype("float32")
    w = (5 * rng.standard_normal((8, 4))).astype("float32")  # styles far from 1
    on, off = stylegan.ModulatedConv2D(16, 3), stylegan.ModulatedConv2D(16, 3, demodulate=False)
    inner = (slice(None), slice(1, -1), slice(1, -1))  # away from the zero padding
    assert on([x, w]).numpy()[inner].std() == pytest.approx(1.0, abs=0.05)
    assert off([x, w]).numpy()[inner].std() > 2.0


def test_adain_gives_each_channel_the_style_s_mean_and_spread():
    rng = np.random.default_rng(2)
    x = (3 + 2 * rng.standard_normal((2, 6, 6, 3))).astype("float32")
    w = rng.standard_normal((2, 5)).astype("float32")
    layer = stylegan.AdaIN()
    out = layer([x, w]).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), layer.shift(w).numpy(), atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), np.abs(layer.scale(w).numpy()), rtol=1e-3)


def test_mix_takes_the_first_style_before_the_crossover():
    first, second = np.zeros((2, 3), "float32"), np.ones((2, 3), "float32")
    mixed = stylegan.mix(first, second, 2).numpy()
    assert mixed.shape == (2, stylegan.NUM_STYLES, 3)
    assert (mixed[:, :2] == 0).all() and (mixed[:, 2:] == 1).all()


@pytest.mark.parametrize("call, words", [
    (lambda g: stylegan.set_psi(g, 1.5), "psi"),
    (lambda g: stylegan.set_psi(g, -0.1), "psi"),
    (lambda g: stylegan.mix(np.zeros((1, 8)), np.zeros((1, 8)), 0), "crossover"),
    (lambda g: stylegan.mix(np.zeros((1, 8)), np.zeros((1, 8)), stylegan.NUM_STYLES), "crossover"),
    (lambda g: stylegan.mix(np.zeros((1, 8)), np.zeros((2, 8)), 2), "w_first and w_second"),
    (lambda g: stylegan.styles_of(g, np.zeros((2, 15))), "z must be a (batch, 16)"),
])
def test_bad_input_gets_one_sentence(generator, call, words):
    with pytest.raises(checks.BadArgument, match=None) as error:
        call(generator)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_noise_switch_and_truncation(generator):
    z = np.random.default_rng(3).standard_normal((4, 16)).astype("float32")
    stylegan.parts(generator)[1].w_avg.assign(np.full(8, 0.5, "float32"))
    try:
        stylegan.set_noise(generator, False)
        np.testing.assert_array_equal(metrics.generate(generator, z), metrics.generate(generator, z))
        stylegan.set_psi(generator, 0.0)
        at_zero = metrics.generate(generator, z)
        np.testing.assert_allclose(at_zero, np.repeat(at_zero[:1], 4, axis=0), atol=1e-6)  # every sample is w_avg
        np.testing.assert_allclose(stylegan.styles_of(generator, z).numpy(), 0.5)
        stylegan.set_psi(generator, 1.0)
        stylegan.set_noise(generator, True)
        for layer in stylegan.parts(generator)[2].layers:
            if isinstance(layer, stylegan.NoiseInjection):
                layer.strength.assign(np.ones(layer.strength.shape, "float32"))
        assert not np.array_equal(metrics.generate(generator, z), metrics.generate(generator, z))
    finally:
        stylegan.set_psi(generator, 1.0)
        stylegan.set_noise(generator, True)


def test_generator_saves_and_loads(generator, tmp_path):
    stylegan.set_noise(generator, False)
    path = tmp_path / "generator.keras"
    generator.save(path)
    loaded = metrics.single_input(keras.saving.load_model(path, compile=False))  # Keras 3.10 warns otherwise
    z = np.random.default_rng(4).standard_normal((3, 16)).astype("float32")
    np.testing.assert_allclose(metrics.generate(loaded, z), metrics.generate(generator, z), atol=1e-6)
    stylegan.set_noise(generator, True)


@pytest.mark.parametrize("own_mapping_optimizer", [False, True])
def test_a_training_step_moves_both_players_and_w_avg(own_mapping_optimizer):
    gan_lessons.set_seed(0)
    g = stylegan.style_generator(stylegan.mapping_network(16, 8, 2), stylegan.synthesis_network(8, (8, 8, 4)))
    trainer = stylegan.StyleGAN(g, stylegan.discriminator(8), r1_weight=10.0)
    mapping_optimizer = keras.optimizers.Adam(1e-5) if own_mapping_optimizer else None
    trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3),
                    mapping_optimizer=mapping_optimizer)
    x, _ = data.load_mnist("train", source="bundled", limit=64, verbose=False)
    before = [v.numpy().copy() for v in g.trainable_variables + trainer.discriminator.trainable_variables]
    for batch in (x[:32], x[32:]):  # two steps, run eagerly (no tracing: quicker for a test)
        logs = trainer.train_step(tf.constant(batch))
    after = [v.numpy() for v in g.trainable_variables + trainer.discriminator.trainable_variables]
    assert all(not np.array_equal(a, b) for a, b in zip(after, before) if a.size > 1)
    assert float(logs["r1"]) > 0 and np.isfinite(float(logs["d_loss"]))
    assert np.abs(trainer.truncation.w_avg.numpy()).sum() > 0
    if own_mapping_optimizer:  # two steps of Adam at 1e-5 move each mapping weight by at most about 2e-5
        moved = [np.abs(v.numpy() - b).max() for v, b in zip(g.get_layer("mapping").trainable_variables, before)]
        assert 0 < max(moved) < 3e-5


def test_cli_quick_run_writes_the_contract_files(tmp_path, capsys):
    out = tmp_path / "style"
    assert main(["train", "stylegan", "--out", str(out), "--quick"]) == 0
    for name in ("generator.keras", "samples.png", "history.json", "run.json"):
        assert (out / name).is_file(), name
    assert set(json.loads((out / "history.json").read_text())) >= {"d_loss", "g_loss", "r1"}
    generator = metrics.single_input(keras.saving.load_model(out / "generator.keras", compile=False))
    assert float(stylegan.parts(generator)[1].psi.numpy()) == 1.0
    images = np.asarray(generator(np.zeros((3, generator.input_shape[-1]), "float32")))
    assert images.shape == (3, 28, 28, 1) and images.min() >= -1 and images.max() <= 1
    capsys.readouterr()
    assert main(["evaluate", str(out), "--n", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "stylegan" and result["n"] == 50
