"""Lesson 09's package code: the schedules, the closed-form forward process, the targets,
the samplers against a denoiser that knows the exact answer, guidance, the trainer (with its
defaults and the samplers' defaults, on two replicas and in float16), bad input, and the
command line's diffusion run and its `sample` command."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons  # noqa: F401
from gan_lessons import checks, data, diffusion, distribute
from gan_lessons.__main__ import main


@pytest.mark.parametrize("schedule", [diffusion.Schedule.linear(1000), diffusion.Schedule.cosine(1000)])
def test_schedules_fall_from_signal_to_noise(schedule):
    ab = schedule.alpha_bars
    assert schedule.T == 1000 and ab[0] > 0.999 and ab[-1] < 1e-4 and np.all(np.diff(ab) < 0)
    np.testing.assert_allclose(np.cumprod(1 - schedule.betas), ab, rtol=1e-12)


@pytest.mark.parametrize("alpha_bars", [[0.5], [0.9, 0.95], [1.0, 0.5], [0.9, 0.0]])
def test_a_schedule_that_does_not_fall_is_refused(alpha_bars):
    with pytest.raises(checks.BadArgument, match="falling sequence"):
        diffusion.Schedule(alpha_bars)


def test_the_closed_form_forward_process_has_the_promised_mean_and_spread():
    schedule = diffusion.Schedule.cosine()
    rng = np.random.default_rng(0)
    x0 = np.full((20000, 2), 1.5)
    for t in (0, 300, 700, 999):
        x_t = schedule.noisy(x0, np.full(len(x0), t), rng.standard_normal(x0.shape))
        a, s = schedule.signal_and_noise(t)
        np.testing.assert_allclose(x_t.mean(0), a * 1.5, atol=0.03)
        np.testing.assert_allclose(x_t.std(0), s, rtol=0.03, atol=1e-4)


@pytest.mark.parametrize("target", diffusion.TARGETS)
def test_split_reads_x0_and_the_noise_back_from_a_perfect_prediction(target):
    rng = np.random.default_rng(1)
    x0, eps = rng.standard_normal((2, 5, 3))
    for a in (0.999, 0.6, 0.05):
        s = np.sqrt(1 - a * a)
        x_t = a * x0 + s * eps
        got_x0, got_eps = diffusion.split(diffusion.training_target(x0, eps, a, s, target), x_t, a, s, target)
        np.testing.assert_allclose(got_x0, x0, atol=1e-9 / a)
        np.testing.assert_allclose(got_eps, eps, atol=1e-9)


def test_the_time_embedding_is_sines_and_cosines():
    layer = diffusion.SinusoidalEmbedding(8)
    out = layer(np.array([0.0, 1.0, 500.0], "float32")).numpy()
    np.testing.assert_allclose(out[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(out[1, :4], np.sin(10000.0 ** -(np.arange(4) / 4)), atol=1e-6)
    assert np.abs(out[1] - out[2]).max() > 0.1
    with pytest.raises(checks.BadArgument, match="even"):
        diffusion.SinusoidalEmbedding(7)


@pytest.mark.parametrize("shape, filters", [((28, 28, 1), (8, 16, 16)), ((7, 7, 4), (16, 32))])
def test_unet_keeps_the_shape_conditional_or_not(shape, filters):
    for classes in (10, None):
        net = diffusion.unet(shape, filters, num_classes=classes, emb_dim=16)
        inputs = [np.zeros((3,) + shape, "float32"), np.array([0, 5, 999], "float32")]
        if classes:
            inputs.append(np.array([0, 9, 10], "int32"))  # 10: no label
        assert net(inputs).shape == (3,) + shape
        assert diffusion.num_classes_of(net) == classes


class Oracle(keras.layers.Layer):
    """The exact prediction for data drawn from N(mu, sigma^2) in each coordinate: given x_t,
    E[eps | x_t] = s (x_t - a mu) / (a^2 sigma^2 + s^2), and v or eps from it."""

    def __init__(self, schedule, mu, sigma, target):
        super().__init__()
        self.a = tf.constant(np.sqrt(schedule.alpha_bars), "float32")
        self.s = tf.constant(np.sqrt(1 - schedule.alpha_bars), "float32")
        self.mu, self.var, self.target = mu, sigma**2, target

    def call(self, inputs):
        x, t = inputs
        i = tf.cast(tf.round(t), "int32")
        a, s = tf.gather(self.a, i)[:, None], tf.gather(self.s, i)[:, None]
        eps = s * (x - a * self.mu) / (a * a * self.var + s * s)
        if self.target == "epsilon":
            return eps
        x0 = (x - s * eps) / a
        return a * eps - s * x0


def _oracle(schedule, mu, sigma, target):
    x, t = keras.Input((2,)), keras.Input(())
    return keras.Model([x, t], Oracle(schedule, mu, sigma, target)([x, t]))


@pytest.mark.parametrize("sampler, target", [("ddpm", "epsilon"), ("ddim", "v"), ("ddim", "epsilon")])
def test_the_samplers_draw_the_data_distribution_from_an_exact_denoiser(sampler, target):
    schedule = diffusion.Schedule.linear(200) if sampler == "ddpm" else diffusion.Schedule.cosine(1000)
    denoiser = _oracle(schedule, 1.0, 0.5, target)
    if sampler == "ddpm":
        x = diffusion.ddpm_sample(denoiser, schedule, 4000, target=target, seed=0)
    else:
        x = diffusion.ddim_sample(denoiser, schedule, 4000, steps=50, target=target, seed=0)
    np.testing.assert_allclose(x.mean(0), 1.0, atol=0.04)
    np.testing.assert_allclose(x.std(0), 0.5, atol=0.04)


def test_ddpm_keeps_the_steps_asked_for():
    schedule = diffusion.Schedule.linear(50)
    x, kept = diffusion.ddpm_sample(_oracle(schedule, 0.0, 1.0, "v"), schedule, 10, keep=(50, 25, 0))
    assert sorted(kept) == [0, 25, 50] and np.array_equal(kept[0], x)


class LabelEcho(keras.layers.Layer):
    def call(self, inputs):
        x, t, label = inputs
        return tf.zeros_like(x) + tf.cast(label, "float32")[:, None]


def _echo():
    x, t, label = keras.Input((2,)), keras.Input(()), keras.Input((), dtype="int32")
    embed = keras.layers.Embedding(11, 2)(label)  # marks the network as knowing 10 classes
    out = LabelEcho()([x, t, label])
    return keras.Model([x, t, label], keras.layers.Add()([out, 0.0 * embed]))


@pytest.mark.parametrize("guidance, expected", [(0.0, 10.0), (1.0, 3.0), (2.0, -4.0), (0.5, 6.5)])
def test_guidance_moves_along_conditional_minus_unconditional(guidance, expected):
    out = diffusion.guided_prediction(_echo(), np.zeros((4, 2), "float32"), 5, np.full(4, 3), guidance, 10)
    np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": 0}, "steps must be a whole number from 1 to 1000"),
    ({"steps": 1001}, "steps must be a whole number from 1 to 1000"),
    ({"guidance": -0.5}, "guidance"),
    ({"labels": [3, 10]}, "labels must be whole numbers from 0 to 9"),
    ({"target": "x0"}, "target must be one of 'v', 'epsilon'; got 'x0'"),
    ({"clip": -1.0}, "clip must be a number in (0, inf); got -1.0"),
    ({"batch_size": 0}, "batch_size must be a positive integer; got 0"),
    ({"seed": -1}, "seed must be an integer from 0 to 2**32 - 1; got -1"),
    ({"n": 0}, "n must be a positive integer; got 0"),
])
def test_bad_sampling_arguments_get_one_sentence(kwargs, words):
    with pytest.raises(checks.BadArgument) as error:
        diffusion.ddim_sample(_echo(), diffusion.Schedule.cosine(), **{"n": 4, **kwargs})
    assert words in str(error.value) and "\n" not in str(error.value)


def test_an_unconditional_denoiser_refuses_labels():
    schedule = diffusion.Schedule.cosine()
    with pytest.raises(checks.BadArgument, match="takes no labels"):
        diffusion.ddim_sample(_oracle(schedule, 0.0, 1.0, "v"), schedule, 4, labels=[1, 2, 3, 4])


def test_training_lowers_the_loss_on_a_2d_ring():
    gan_lessons.set_seed(0)
    points, _ = data.gaussian_ring(2048, std=0.05)
    trainer = diffusion.Diffusion(diffusion.toy_denoiser((64, 64)), diffusion.Schedule.linear(1000), target="epsilon")
    trainer.compile(keras.optimizers.Adam(2e-3))
    dataset, steps = data.make_dataset(points, batch_size=256)
    history = trainer.fit(dataset, epochs=8, steps_per_epoch=steps, verbose=0).history["loss"]
    assert history[-1] < 0.5  # predicting no noise at all scores 1, the noise's variance


def on_the_ring(points):
    """The share of 2-D points within 0.25 of the ring of radius 2 (about 0.14 of Gaussian noise)."""
    return float(np.mean(np.abs(np.linalg.norm(points, axis=1) - 2.0) < 0.25))


def test_a_trainer_and_both_samplers_with_their_defaults_draw_the_data_not_noise():
    """The trainer and the samplers agree on the prediction target by default. Samples read with the
    other target fall short of the same criterion (measured: 0 % of them near the ring for this
    model; 75 % and 6 % for DDPM and DDIM reading a model trained on epsilon as v), as noise does."""
    gan_lessons.set_seed(0)
    points, _ = data.gaussian_ring(4096, std=0.05)
    schedule = diffusion.Schedule.cosine(200)
    trainer = diffusion.Diffusion(diffusion.toy_denoiser((64, 64)), schedule)
    trainer.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, 600)), steps_per_execution=50)
    dataset, _ = data.make_dataset(points, batch_size=256)
    trainer.fit(dataset, epochs=12, steps_per_epoch=50, verbose=0)
    for sampler in (diffusion.ddpm_sample, diffusion.ddim_sample):
        share = on_the_ring(sampler(trainer.denoiser, schedule, 500))
        assert share > 0.85, f"{sampler.__name__} with its defaults: {share:.0%} of the samples near the ring"
    other = next(target for target in diffusion.TARGETS if target != trainer.target)
    assert on_the_ring(diffusion.ddim_sample(trainer.denoiser, schedule, 500, target=other)) < 0.85
    assert on_the_ring(np.random.default_rng(0).standard_normal((500, 2))) < 0.85


def _wide():
    x, t = keras.Input((2,)), keras.Input((1,))
    both = keras.layers.Concatenate()([x, t])
    return keras.Model([x, t], keras.layers.Dense(3)(both), name="wide")  # a prediction that does not fit x_t


@pytest.mark.parametrize("call, words", [
    (lambda: diffusion.Diffusion(diffusion.toy_denoiser((8,)), schedule=1000),
     "schedule must be a Schedule (for example Schedule.cosine(1000)); got 1000."),
    (lambda: diffusion.Diffusion("unet", diffusion.Schedule.cosine(10)), "denoiser must be a Keras model; got str"),
    (lambda: diffusion.Diffusion(keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)], name="mlp"),
                                 diffusion.Schedule.cosine(10)), "denoiser must take 2 or 3 input(s)"),
    (lambda: diffusion.Diffusion(_wide(), diffusion.Schedule.cosine(10)),
     "the denoiser 'wide' predicts shape (3,) for x_t of shape (2,); its prediction must have x_t's shape."),
    (lambda: diffusion.Diffusion(diffusion.toy_denoiser((8,)), diffusion.Schedule.cosine(10), target="x0"),
     "target must be one of 'v', 'epsilon'; got 'x0'"),
    (lambda: diffusion.Diffusion(diffusion.toy_denoiser((8,)), diffusion.Schedule.cosine(10), label_dropout=2),
     "label_dropout must be a number in [0, 1]; got 2"),
    (lambda: diffusion.Schedule("abc"), "alpha_bars must be a falling sequence of at least 2 numbers in (0, 1); "
                                        "got 'abc'"),
    (lambda: diffusion.Schedule.linear(10, beta_start=0.5, beta_end=0.1), "beta_end must be a number in [0.5, 1)"),
    (lambda: diffusion.Schedule.cosine(0), "T must be an integer >= 2; got 0"),
    (lambda: diffusion.Schedule.cosine(10, s=-1), "s must be a number in (0, inf); got -1"),
    (lambda: diffusion.Schedule.cosine(10).signal_and_noise(10), "t must hold whole steps from 0 to 9; got 10"),
    (lambda: diffusion.split(1.0, 1.0, 0.6, 0.8, "x0"), "target must be one of"),
    (lambda: diffusion.training_target(1.0, 1.0, 0.6, 0.8, "eps"), "target must be one of"),
    (lambda: diffusion.toy_denoiser(time_dim=7), "dim must be even (half sines, half cosines); got 7"),
    (lambda: diffusion.unet((28, 28, 1), (4, 8)), "filters must be multiples of 8"),
    (lambda: diffusion.unet(28, (8, 8)), "input_shape must be a non-empty sequence of positive integers; got 28"),
    (lambda: diffusion.autoencoder(4, (8,)), "filters must give 2 channel counts"),
    (lambda: diffusion.encode(None, np.zeros((2, 28, 28))), "images must be an array of shape (n, 28, 28, 1)"),
    (lambda: diffusion.decode(None, np.zeros((2, 7, 7, 4)), batch_size=0), "batch_size must be a positive integer"),
    (lambda: diffusion.train_autoencoder(None, None, np.zeros((2, 28, 28, 1)), learning_rate=0),
     "learning_rate must be a number in (0, inf); got 0"),
    (lambda: diffusion.ddpm_sample(diffusion.toy_denoiser((8,)), "cosine"), "schedule must be a Schedule"),
    (lambda: diffusion.ddim_sample(diffusion.unet((7, 7, 4), (8,), num_classes=None), diffusion.Schedule.cosine(10),
                                   4, labels=[1, 2, 3, 4]), "this denoiser takes no labels"),
])
def test_bad_arguments_get_one_sentence(call, words):
    with pytest.raises(checks.BadArgument) as error:
        call()
    assert words in str(error.value) and "\n" not in str(error.value)


def fixed_loss(trainer, points):
    """The trainer's loss on one fixed draw of steps and noise (the training batches' is noisier)."""
    rng = np.random.default_rng(0)
    t, noise = rng.integers(0, trainer.schedule.T, len(points)), rng.standard_normal(points.shape).astype("float32")
    a, s = (v[:, None] for v in trainer.schedule.signal_and_noise(t))
    prediction = np.asarray(trainer.denoiser([a * points + s * noise, t.astype("float32")], training=False), "float32")
    return float(np.mean((prediction - diffusion.training_target(points, noise, a, s, trainer.target)) ** 2))


def prepared_and_trained(strategy, steps=15):
    """A small 2-D trainer prepared as the command line prepares one (under ``strategy`` and the
    current dtype policy), trained ``steps`` steps on the ring; checks that it learned."""
    gan_lessons.set_seed(0)
    points, _ = data.gaussian_ring(2048, std=0.05)
    with strategy.scope():
        trainer = distribute.replica_seeds(diffusion.Diffusion(diffusion.toy_denoiser((32, 32)),
                                                               diffusion.Schedule.cosine(100), seed=0))
        trainer.compile(distribute.optimizer(keras.optimizers.Adam(1e-2)))
    trainer.run_eagerly = True  # for a network this small, tracing the step would take most of the time
    before = fixed_loss(trainer, points[:512])
    history = trainer.fit(tf.data.Dataset.from_tensor_slices(points).batch(128).repeat(), epochs=1,
                          steps_per_epoch=steps, verbose=0).history
    assert np.isfinite(history["loss"][-1])
    assert fixed_loss(trainer, points[:512]) < 0.95 * before
    return trainer


def test_on_two_replicas_the_denoiser_and_the_optimizer_stay_in_step_and_learn():
    mirrored = distribute._mirrored(tuple(device.name for device in tf.config.list_logical_devices("CPU")))
    trainer = prepared_and_trained(mirrored)
    for variable in trainer.weights + trainer.optimizer.variables:
        first, second = (np.asarray(v) for v in mirrored.experimental_local_results(variable.value))
        np.testing.assert_array_equal(first, second, err_msg=variable.path)


def test_in_mixed_float16_the_denoiser_learns_with_a_loss_scale():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        trainer = prepared_and_trained(tf.distribute.get_strategy())
    finally:
        keras.config.set_dtype_policy("float32")
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.denoiser.compute_dtype == "float16" and trainer.denoiser.variable_dtype == "float32"


def test_label_dropout_one_trains_only_the_no_label_index():
    gan_lessons.set_seed(0)
    net = diffusion.unet((7, 7, 4), (8, 8), num_classes=10, emb_dim=8)
    table = next(w for w in net.weights if "embeddings" in w.path)
    before = table.numpy().copy()
    trainer = diffusion.Diffusion(net, diffusion.Schedule.cosine(), target="v", label_dropout=1.0)
    trainer.compile(keras.optimizers.Adam(1e-2))
    trainer.run_eagerly = True  # two steps: tracing them would take most of the time
    x = np.random.default_rng(0).standard_normal((64, 7, 7, 4)).astype("float32")
    dataset, _ = data.make_dataset(x, np.arange(64) % 10, batch_size=32)
    trainer.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
    changed = np.abs(table.numpy() - before).max(axis=1) > 0
    assert changed.tolist() == [False] * 10 + [True]


# ------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "diffusion"
    assert main(["train", "diffusion", "--out", str(out), "--quick"]) == 0
    return out


def test_train_diffusion_writes_the_contract_files(diffusion_run):
    for name in ("denoiser.keras", "decoder.keras", "encoder.keras", "diffusion.json", "samples.npz", "samples.png",
                 "history.json", "run.json"):
        assert (diffusion_run / name).is_file(), name
    with np.load(diffusion_run / "samples.npz") as saved:
        images, labels = saved["images"], saved["labels"]
    assert images.shape == (1000, 28, 28, 1) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    assert np.bincount(labels, minlength=10).tolist() == [100] * 10
    run = json.loads((diffusion_run / "run.json").read_text())
    assert run["status"] == "finished" and run["model"] == "diffusion"
    denoiser = keras.saving.load_model(diffusion_run / "denoiser.keras", compile=False)
    assert diffusion.num_classes_of(denoiser) == 10 and denoiser.output_shape == (None, 7, 7, 4)


def test_evaluate_reads_the_saved_samples(diffusion_run, capsys):
    assert main(["evaluate", str(diffusion_run), "--n", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "diffusion" and result["n"] == 200 and 0 <= result["label_accuracy"] <= 1


def test_sample_draws_the_digits_asked_for(diffusion_run, tmp_path, capsys):
    out = tmp_path / "sevens.npz"
    assert main(["sample", str(diffusion_run), "--n", "12", "--steps", "3", "--guidance", "2", "--label", "7",
                 "--out", str(out)]) == 0
    assert "Drew 12 digits (3 DDIM steps, guidance 2.0, seed 0)" in capsys.readouterr().out
    with np.load(out) as saved:
        assert saved["images"].shape == (12, 28, 28, 1) and saved["labels"].tolist() == [7] * 12


@pytest.mark.parametrize("args, words", [
    (["--steps", "0"], "--steps must be"),
    (["--guidance", "-1"], "--guidance must be a number of 0 or more"),
    (["--label", "10"], "--label must be a digit class from 0 to 9"),
])
def test_sample_refuses_bad_options_in_one_sentence(diffusion_run, tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as stop:
        main(["sample", str(diffusion_run), "--out", str(tmp_path / "x.npz"), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and words in err and "Traceback" not in err


def test_sample_refuses_more_steps_than_the_model_knows(diffusion_run, tmp_path, capsys):
    assert main(["sample", str(diffusion_run), "--out", str(tmp_path / "x.npz"), "--steps", "1001"]) == 2
    assert "--steps 1001 is more than the 1000 steps the model was trained with" in capsys.readouterr().err


def test_sample_refuses_a_folder_without_a_denoiser(diffusion_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text((diffusion_run / "run.json").read_text())
    assert main(["sample", str(broken), "--out", str(tmp_path / "x.npz")]) == 2
    assert "has no denoiser.keras or decoder.keras or diffusion.json" in capsys.readouterr().err
    (broken / "run.json").write_text(json.dumps({**json.loads((diffusion_run / "run.json").read_text()),
                                                 "model": "gan"}))
    assert main(["sample", str(broken), "--out", str(tmp_path / "x.npz")]) == 2
    assert "'sample' draws from a diffusion run" in capsys.readouterr().err


def test_a_time_budget_stops_fit_and_says_so(capsys):
    from gan_lessons import callbacks

    trainer = diffusion.Diffusion(diffusion.toy_denoiser((8,)), diffusion.Schedule.linear(10))
    trainer.compile(keras.optimizers.Adam(1e-3))
    dataset, _ = data.make_dataset(data.s_curve(64), batch_size=32)
    history = trainer.fit(dataset, epochs=100_000, steps_per_epoch=1, verbose=0,
                          callbacks=[callbacks.Progress(keys=["loss"], seconds=0.5)])
    assert 1 <= len(history.history["loss"]) < 100_000
    assert "time budget spent" in capsys.readouterr().out


def test_a_finished_diffusion_run_is_refused_and_an_unfinished_one_keeps_its_autoencoder(diffusion_run, tmp_path,
                                                                                       capsys):
    import shutil

    assert main(["train", "diffusion", "--out", str(diffusion_run), "--quick"]) == 2
    assert "already holds a finished diffusion run" in capsys.readouterr().err
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for name in ("encoder.keras", "decoder.keras"):
        shutil.copy(diffusion_run / name, resumed / name)
    run = json.loads((diffusion_run / "run.json").read_text())
    run = {key: run[key] for key in ("model", "epochs", "batch_size", "seed", "quick", "source")}
    (resumed / "run.json").write_text(json.dumps({**run, "status": "running"}))
    assert main(["train", "diffusion", "--out", str(resumed), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "Part 1" not in out and "Autoencoder: mean absolute reconstruction error" in out
    assert (resumed / "samples.npz").is_file()
