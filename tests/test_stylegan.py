"""Lesson 08's code: modulation and demodulation, the lesson's AdaIN, noise, truncation, style
mixing, the trainer's step (on one device, two replicas and in float16), and the command line's
stylegan run."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons  # noqa: F401
from gan_lessons import checks, data, distribute, gan, metrics, recipes, stylegan
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


def lesson_adain():
    """AdaIN is written in the lesson only (the package's networks modulate instead)."""
    cells = json.loads((Path(__file__).parents[1] / "notebooks" / "08_stylegan.ipynb").read_text())["cells"]
    [source] = ["".join(c["source"]) for c in cells if "class AdaIN(" in "".join(c["source"])]
    namespace = {"keras": keras, "tf": tf, "layers": keras.layers, "STYLE_INIT": stylegan.STYLE_INIT}
    exec(compile(source, "08_stylegan.ipynb", "exec"), namespace)
    return namespace["AdaIN"]


def test_the_lesson_s_adain_gives_each_channel_the_style_s_mean_and_spread():
    rng = np.random.default_rng(2)
    x = (3 + 2 * rng.standard_normal((2, 6, 6, 3))).astype("float32")
    w = rng.standard_normal((2, 5)).astype("float32")
    layer = lesson_adain()()
    out = layer([x, w]).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), layer.shift(w).numpy(), atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), np.abs(layer.scale(w).numpy()), rtol=1e-3)


def test_mix_takes_the_first_style_before_the_crossover():
    first, second = np.zeros((2, 3), "float32"), np.ones((2, 3), "float32")
    mixed = stylegan.mix(first, second, 2).numpy()
    assert mixed.shape == (2, stylegan.NUM_STYLES, 3)
    assert (mixed[:, :2] == 0).all() and (mixed[:, 2:] == 1).all()


@pytest.mark.parametrize("call, words", [
    (lambda g: stylegan.set_psi(g, 1.5), "psi must be a number in [0, 1]; got 1.5"),
    (lambda g: stylegan.set_psi(g, -0.1), "psi must be a number in [0, 1]; got -0.1"),
    (lambda g: stylegan.set_noise(g, "off"), "on must be True (noise on) or False (off); got 'off'"),
    (lambda g: stylegan.mix(np.zeros((1, 8)), np.zeros((1, 8)), 0), "crossover must be one of 1, 2, 3, 4, 5; got 0"),
    (lambda g: stylegan.mix(np.zeros((1, 8)), np.zeros((1, 8)), stylegan.NUM_STYLES), "crossover must be one of"),
    (lambda g: stylegan.mix(np.zeros((1, 8)), np.zeros((2, 8)), 2), "w_second must be an array of shape (1, 8); "
                                                                    "got shape (2, 8)"),
    (lambda g: stylegan.styles_of(g, np.zeros((2, 15))), "z must be an array of shape (batch, 16); got shape (2, 15)"),
    (lambda g: stylegan.draw(g, np.zeros((2, 3, 8))), "styles must be an array of shape (batch, 6, 8) or (batch, 8)"),
    (lambda g: stylegan.parts(gan.mlp_generator(8, (8,))), "generator must be a style generator"),
    (lambda g: stylegan.style_generator(stylegan.mapping_network(16, 8, 1), stylegan.synthesis_network(4, (4, 4, 4))),
     "the mapping network makes w of shape (8,), but the synthesis network takes styles of shape (6, 4)"),
    (lambda g: stylegan.synthesis_network(8, (8, 8)), "filters must give 3 channel counts"),
    (lambda g: stylegan.synthesis_network(8, seed=-1), "seed must be an integer from 0 to 2**32 - 1; got -1"),
    (lambda g: stylegan.NoiseInjection(seed="a"), "seed must be an integer"),
    (lambda g: stylegan.Truncation(psi=2), "psi must be a number in [0, 1]; got 2"),
    (lambda g: stylegan.StyleGAN(g, stylegan.discriminator(4), mixing=1.5), "mixing must be a number in [0, 1]"),
    (lambda g: stylegan.StyleGAN(g, keras.Sequential([keras.Input((14, 14, 1)), keras.layers.Flatten(),
                                                      keras.layers.Dense(1)], name="small")),
     "makes images of shape (28, 28, 1), but the discriminator 'small' takes inputs of shape (14, 14, 1)"),
])
def test_bad_input_gets_one_sentence(generator, call, words):
    with pytest.raises(checks.BadArgument) as error:
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


def test_the_command_line_s_mapping_network_learns():
    """The recipe's mapping network moves within the run: two steps change its weights by more
    than 2e-4 of their size (StyleGAN's hundredth of the synthesis rate, 5e-6, moved them 4e-5)."""
    gan_lessons.set_seed(0)
    trainer, _ = recipes.build_stylegan(0, 100)
    start = [v.numpy().copy() for v in trainer.mapping.trainable_variables]
    x, _ = data.load_mnist("train", source="bundled", limit=64, verbose=False)
    for batch in (x[:32], x[32:]):  # run eagerly: two steps are quicker than tracing one
        trainer.train_step(tf.constant(batch))
    assert stylegan.relative_change(trainer.mapping.trainable_variables, start) > 2e-4
    # The measure itself: |(3, 4) - (0, 4)| / |(0, 4)| over two "layers".
    assert stylegan.relative_change([np.array([3.0]), np.array([[4.0]])], [np.zeros(1), np.array([[4.0]])]) == 0.75


def test_each_optimizer_takes_the_gradient_of_the_loss_as_it_scales_it():
    """Three loss scales, one per optimizer, move every weight as plain optimizers do: the mapping
    network's gradient is taken for its own optimizer's scale, not the synthesis network's."""
    x = tf.constant(data.load_mnist("train", source="bundled", limit=16, verbose=False)[0])
    steps = []
    for scales in (None, (2.0**3, 2.0**6, 2.0**12)):
        gan_lessons.set_seed(0)
        g = stylegan.style_generator(stylegan.mapping_network(16, 8, 2), stylegan.synthesis_network(8, (8, 8, 4)))
        trainer = stylegan.StyleGAN(g, stylegan.discriminator(4), seed=0)
        optimizers = [keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.01)]
        if scales:
            optimizers = [keras.optimizers.LossScaleOptimizer(o, initial_scale=s) for o, s in zip(optimizers, scales)]
        trainer.compile(*optimizers)  # d_optimizer, g_optimizer, mapping_optimizer
        before = [np.array(v) for v in trainer.weights]
        trainer.train_step(x)
        steps.append([np.array(v) - b for v, b in zip(trainer.weights, before)])
    assert max(np.abs(step).max() for step in steps[0]) > 0
    for plain, scaled, variable in zip(*steps, trainer.weights):
        np.testing.assert_allclose(scaled, plain, rtol=1e-5, atol=1e-8, err_msg=variable.path)


def prepared_style_gan():
    """A small StyleGAN prepared as the command line prepares one, under the current strategy and
    dtype policy: each replica draws its own noise, the optimizers fit the strategy and policy."""
    gan_lessons.set_seed(0)
    g = stylegan.style_generator(stylegan.mapping_network(16, 8, 2), stylegan.synthesis_network(8, (8, 8, 4)))
    trainer = distribute.replica_seeds(stylegan.StyleGAN(g, stylegan.discriminator(4), seed=0))
    trainer.compile(**{name: distribute.optimizer(keras.optimizers.Adam(rate, beta_1=0.5, beta_2=0.99)) for name, rate
                       in (("d_optimizer", 2e-3), ("g_optimizer", 2e-3), ("mapping_optimizer", 2e-5))})
    trainer.run_eagerly = True  # for networks this small, tracing the step would take most of the time
    return trainer


def train_steps(trainer, steps=5):
    """``steps`` steps on batches of 16 digits; returns the losses of each step."""
    x, _ = data.load_mnist("train", source="bundled", limit=16 * steps, verbose=False)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(16)
    history = trainer.fit(dataset, epochs=steps, steps_per_epoch=1, verbose=0).history  # one step an epoch
    assert all(np.all(np.isfinite(values)) for values in history.values()), history
    # The discriminator learns first: its loss falls from 2 log 2 = 1.39.
    assert np.mean(history["d_loss"][-2:]) < history["d_loss"][0] - 0.05, history["d_loss"]
    return history


def test_in_mixed_float16_each_optimizer_keeps_its_own_loss_scale():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        trainer = prepared_style_gan()
    finally:
        keras.config.set_dtype_policy("float32")
    optimizers = (trainer.d_optimizer, trainer.g_optimizer, trainer.mapping_optimizer)
    assert all(isinstance(optimizer, keras.optimizers.LossScaleOptimizer) for optimizer in optimizers)
    assert trainer.synthesis.compute_dtype == "float16" and trainer.synthesis.variable_dtype == "float32"
    mapping_before = [np.array(v) for v in trainer.mapping.trainable_variables]
    train_steps(trainer)
    assert all(int(optimizer.iterations) >= 1 for optimizer in optimizers)  # not every step skipped
    assert any(not np.array_equal(np.array(v), b) for v, b in zip(trainer.mapping.trainable_variables, mapping_before))


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
