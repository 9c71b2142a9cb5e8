"""The trainers under tf.distribute: one step on 2 replicas equals one step on one device.

conftest.py splits the CPU into two logical devices, so a MirroredStrategy over them runs
every trainer with 2 replicas, each on half of the global batch, as on a machine with 2 GPUs.
The equality tests use networks without BatchNorm, whose statistics are per replica by
design (and whose per-replica batch is smaller than the global one).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons
from gan_lessons import checks, cgan, cyclegan, data, diffusion, distribute, gan, losses, pix2pix, stylegan, wgan
from gan_lessons.__main__ import main

POINTS = np.random.default_rng(0).normal(size=(96, 2)).astype("float32")


@pytest.fixture(scope="module")
def mirrored():
    """A MirroredStrategy over the CPU's two logical devices (also on a machine with GPUs)."""
    cpus = tuple(device.name for device in tf.config.list_logical_devices("CPU"))
    assert len(cpus) == 2
    return distribute._mirrored(cpus)


def digits(n):
    x, y = data.load_mnist("train", source="bundled", limit=n, verbose=False)
    return x, y


def trained(make, dataset, steps, strategy=None, batch_axis=0, eagerly=True):
    """A trainer made by ``make`` (seed 0) after ``steps`` steps of fit, on one device or under ``strategy``
    (by default eagerly: for these tiny networks tracing the step would take most of the time)."""
    gan_lessons.set_seed(0)
    if strategy is None:
        trainer = make()
    else:
        with strategy.scope():
            trainer = make()
        dataset = distribute.split_dataset(dataset, strategy, batch_axis)
    trainer.run_eagerly = eagerly
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return trainer


def assert_same_training(make, dataset, steps, strategy, batch_axis=0, eagerly=True):
    one = trained(make, dataset, steps, eagerly=eagerly)
    two = trained(make, dataset, steps, strategy, batch_axis, eagerly=eagerly)
    assert len(one.weights) == len(two.weights) > 0
    for a, b in zip(one.weights, two.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5, err_msg=a.path)
    for a, b in zip(one.metrics, two.metrics):  # the logged values are the global batch's, not halved
        np.testing.assert_allclose(float(a.result()), float(b.result()), rtol=1e-5, atol=1e-6, err_msg=a.name)
    return one, two


def adam(rate=1e-3):
    return keras.optimizers.Adam(rate, beta_1=0.5, beta_2=0.9)


@pytest.mark.parametrize("eagerly", [True, False])
def test_gan_two_replicas_train_as_one_device(mirrored, eagerly):
    def make():
        trainer = gan.GAN(wgan.toy_generator(hidden_units=(16, 16)), wgan.toy_critic((16, 16)), d_steps=2,
                          real_label=0.9, seed=3)
        trainer.compile(d_optimizer=adam(), g_optimizer=adam())
        return trainer

    one, _ = assert_same_training(make, tf.data.Dataset.from_tensor_slices(POINTS).batch(8), 3, mirrored,
                                  eagerly=eagerly)
    assert float(one.metrics[0].result()) > 1.0  # d_loss near 2 log 2 = 1.39 at the start


def test_wgan_gp_two_replicas_train_as_one_device_penalty_included(mirrored):
    x, _ = digits(72)

    def make():
        generator = keras.Sequential([keras.Input((8,)), keras.layers.Dense(28 * 28, activation="tanh"),
                                      keras.layers.Reshape((28, 28, 1))])
        trainer = wgan.WGAN(generator, wgan.critic(4), n_critic=3, gp_weight=10.0, seed=3)
        trainer.compile(d_optimizer=adam(), g_optimizer=adam())
        return trainer

    stacked = tf.data.Dataset.from_tensor_slices(x).batch(4).batch(3)  # (n_critic, batch, 28, 28, 1)
    one, _ = assert_same_training(make, stacked, 2, mirrored, batch_axis=1)
    assert float(one.trackers["gp"].result()) > 0


def test_clipped_wgan_two_replicas_train_as_one_device(mirrored):
    def make():
        trainer = wgan.WGAN(wgan.toy_generator(hidden_units=(16,)), wgan.toy_critic((16,)), n_critic=3,
                            clip_value=0.05, seed=3)
        trainer.compile(d_optimizer=keras.optimizers.RMSprop(1e-3), g_optimizer=keras.optimizers.RMSprop(1e-3))
        return trainer

    assert_same_training(make, tf.data.Dataset.from_tensor_slices(POINTS).batch(4).batch(3), 2, mirrored,
                         batch_axis=1)


def test_cyclegan_two_replicas_train_as_one_device_pool_included(mirrored):
    x, _ = digits(48)

    def make():
        networks = [cyclegan.resnet_generator(4, 1), cyclegan.resnet_generator(4, 1),
                    cyclegan.patchgan_discriminator(4), cyclegan.patchgan_discriminator(4)]
        trainer = cyclegan.CycleGAN(*networks, pool_size=6, seed=3)
        trainer.compile(d_optimizer=adam(2e-4), g_optimizer=adam(2e-4))
        return trainer

    # 3 steps of 4 images each with a pool of 6: it fills, then swaps.
    one, two = assert_same_training(make, tf.data.Dataset.from_tensor_slices((x[:24], -x[24:])).batch(4), 3,
                                    mirrored)
    assert int(np.asarray(two.pool_a.count)) == 6


def test_diffusion_two_replicas_train_as_one_device(mirrored):
    def make():
        trainer = diffusion.Diffusion(diffusion.toy_denoiser(hidden_units=(16, 16)), diffusion.Schedule.cosine(50),
                                      seed=3)
        trainer.compile(adam())
        return trainer

    assert_same_training(make, tf.data.Dataset.from_tensor_slices(POINTS).batch(8), 3, mirrored)


@pytest.mark.parametrize("model", ["cgan", "pix2pix", "stylegan", "conditional diffusion"])
def test_every_other_trainer_takes_steps_on_two_replicas(mirrored, model):
    """Their networks hold BatchNorm or dropout (per replica), so here: it trains, losses finite."""
    x, y = digits(16)
    with mirrored.scope():
        if model == "cgan":
            trainer = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(
                filters=4), matching_aware=True)
            trainer.compile(d_optimizer=adam(), g_optimizer=adam())
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        elif model == "pix2pix":
            trainer = pix2pix.Pix2Pix(pix2pix.unet_generator(4), pix2pix.conditional_patchgan(4))
            trainer.compile(d_optimizer=adam(), g_optimizer=adam())
            dataset = tf.data.Dataset.from_tensor_slices((-x, x)).batch(8)
        elif model == "stylegan":
            trainer = stylegan.StyleGAN(stylegan.style_generator(stylegan.mapping_network(16, 8, 2),
                                                                 stylegan.synthesis_network(8, (8, 8, 4))),
                                        stylegan.discriminator(4))
            trainer.compile(d_optimizer=adam(), g_optimizer=adam())
            dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
        else:
            trainer = diffusion.Diffusion(diffusion.unet((28, 28, 1), (8, 16), num_classes=10, emb_dim=16),
                                          diffusion.Schedule.cosine(50), label_dropout=0.5)
            trainer.compile(adam())
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0).history
    assert history and all(np.isfinite(values[-1]) for values in history.values())


def test_outside_a_strategy_the_helpers_change_nothing():
    values = tf.reshape(tf.range(6.0), (3, 2))
    assert distribute.replicas() == 1 and distribute.global_size(5) == 5
    for helper in (distribute.rows, distribute.gather, distribute.mean):
        assert helper(values) is values
    variable = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        loss = variable ** 2
    assert float(distribute.gradients(tape, loss, [variable])[0]) == 6.0


def test_in_a_replica_rows_split_the_global_draw_and_gradients_are_shared(mirrored):
    def step():
        drawn = tf.reshape(tf.range(8.0), (4, 2))
        variable = tf.constant(3.0)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            loss = variable ** 2
        assert distribute.replicas() == 2 and distribute.global_size(2) == 4
        return distribute.rows(drawn), distribute.gradients(tape, loss, [variable])[0], distribute.gather(
            distribute.rows(drawn))

    rows, grads, gathered = mirrored.run(step)
    first, second = mirrored.experimental_local_results(rows)
    np.testing.assert_array_equal(first, [[0, 1], [2, 3]])
    np.testing.assert_array_equal(second, [[4, 5], [6, 7]])
    assert [float(g) for g in mirrored.experimental_local_results(grads)] == [3.0, 3.0]  # 6 / 2 replicas
    for joined in mirrored.experimental_local_results(gathered):
        np.testing.assert_array_equal(joined, np.arange(8.0).reshape(4, 2))


def test_strategies_by_name_and_bad_input(monkeypatch, mirrored):
    gpus = tf.config.list_logical_devices("GPU")
    strategy, where = distribute.make_strategy("one")
    assert strategy.num_replicas_in_sync == 1 and ("GPU" if gpus else "CPU") in where
    assert distribute.make_strategy("auto")[0].num_replicas_in_sync == (len(gpus) if len(gpus) >= 2 else 1)
    with pytest.raises(checks.BadArgument, match="unknown strategy 'two'; choose one of auto, one, mirrored"):
        distribute.make_strategy("two")
    with pytest.raises(checks.BadArgument, match="strategy 'tpu' found no TPU .*use --strategy auto"):
        distribute.make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(checks.BadArgument, match="needs the TF_CONFIG environment variable"):
        distribute.make_strategy("multi-worker")
    assert distribute.check_batch(64, mirrored) == 32
    with pytest.raises(checks.BadArgument, match="a batch of 33 does not split evenly over 2 replicas; use a "
                                                  "multiple of 2, for example 32 or 34"):
        distribute.check_batch(33, mirrored)
    with pytest.raises(checks.BadArgument, match="a batch of 1 does not split evenly over 2 replicas; use a "
                                                  r"multiple of 2, for example 2\.$"):
        distribute.check_batch(1, mirrored)


def test_each_replica_draws_its_own_rows_of_the_global_draw(mirrored):
    with mirrored.scope():
        two = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(filters=4),
                                  seed=5)
        noise_layer = stylegan.NoiseInjection(seed=5)
        noise_layer.build((None, 3, 3, 1))
    one = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(filters=4),
                              seed=5)
    one_layer = stylegan.NoiseInjection(seed=5)
    one_layer.build((None, 3, 3, 1))
    one_layer.strength.assign(np.ones(1, "float32"))
    noise_layer.strength.assign(np.ones(1, "float32"))

    def draws():
        return two.noise(2), two.random_labels(2), noise_layer(tf.zeros((2, 3, 3, 1)))

    for per_replica, whole in zip(mirrored.run(draws), (one.noise(4), one.random_labels(4),
                                                       one_layer(tf.zeros((4, 3, 3, 1))))):
        first, second = (np.asarray(v) for v in mirrored.experimental_local_results(per_replica))
        assert not np.array_equal(first, second)  # different noise on each replica
        np.testing.assert_array_equal(np.concatenate([first, second]), np.asarray(whole))


def test_cli_trains_on_two_replicas_and_refuses_an_uneven_batch(tmp_path, capsys):
    replicas = distribute.make_strategy("mirrored")[0].num_replicas_in_sync
    out = tmp_path / "wgan-gp"
    assert main(["train", "wgan-gp", "--out", str(out), "--quick", "--strategy", "mirrored", "--batch-size",
                 str(8 * replicas)]) == 0
    assert f"Devices: MirroredStrategy over {replicas} devices; precision float32." in capsys.readouterr().out
    assert (out / "generator.keras").is_file()
    assert keras.saving.load_model(out / "generator.keras", compile=False).predict(
        np.zeros((2, 64), "float32"), verbose=0).shape == (2, 28, 28, 1)
    odd = 8 * replicas + 1
    assert main(["train", "gan", "--out", str(tmp_path / "odd"), "--quick", "--strategy", "mirrored",
                 "--batch-size", str(odd)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: a batch of {odd} does not split evenly over {replicas} "
                                               f"replicas; use a multiple of {replicas}, for example {odd - 1} or "
                                               f"{odd - 1 + replicas}.")
    assert not (tmp_path / "odd").exists()


# ------------------------------------------------------------------ mixed precision


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


def mixed_trainer(model):
    """A small trainer of each family and a batch for it, built under the current policy."""
    x, y = digits(16)
    if model == "dcgan":
        trainer = gan.GAN(gan.dcgan_generator(8, 4), gan.dcgan_discriminator(4))
        data_ = tf.data.Dataset.from_tensor_slices(x).batch(8)
    elif model == "cgan":
        trainer = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(filters=4),
                                      matching_aware=True)
        data_ = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    elif model == "wgan-gp":
        trainer = wgan.WGAN(gan.dcgan_generator(8, 4), wgan.critic(4), n_critic=2, gp_weight=10.0)
        data_ = tf.data.Dataset.from_tensor_slices(x).batch(4).batch(2)
    elif model == "cyclegan":
        trainer = cyclegan.CycleGAN(cyclegan.resnet_generator(4, 1), cyclegan.resnet_generator(4, 1),
                                    cyclegan.patchgan_discriminator(4), cyclegan.patchgan_discriminator(4), pool_size=4)
        data_ = tf.data.Dataset.from_tensor_slices((x, -x)).batch(4)
    elif model == "pix2pix":
        trainer = pix2pix.Pix2Pix(pix2pix.unet_generator(4), pix2pix.conditional_patchgan(4))
        data_ = tf.data.Dataset.from_tensor_slices((-x, x)).batch(8)
    elif model == "stylegan":
        trainer = stylegan.StyleGAN(stylegan.style_generator(stylegan.mapping_network(16, 8, 2),
                                                             stylegan.synthesis_network(8, (8, 8, 4))),
                                    stylegan.discriminator(4))
        trainer.compile(d_optimizer=adam(), g_optimizer=adam(), mapping_optimizer=adam(1e-5))
        return trainer, tf.data.Dataset.from_tensor_slices(x).batch(8)
    else:
        trainer = diffusion.Diffusion(diffusion.unet((28, 28, 1), (8, 16), num_classes=10, emb_dim=16),
                                      diffusion.Schedule.cosine(50))
        trainer.compile(adam())
        return trainer, tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    trainer.compile(d_optimizer=adam(), g_optimizer=adam())
    return trainer, data_


@pytest.mark.parametrize("model", ["dcgan", "cgan", "wgan-gp", "cyclegan", "pix2pix", "stylegan", "diffusion"])
def test_every_trainer_trains_in_mixed_float16_with_loss_scaling(mixed_float16, model):
    trainer, dataset = mixed_trainer(model)
    optimizers = [getattr(trainer, name) for name in ("d_optimizer", "g_optimizer", "mapping_optimizer", "optimizer")
                  if getattr(trainer, name, None) is not None]
    assert optimizers and all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in optimizers)
    networks = [layer for layer in trainer.layers if isinstance(layer, keras.Model)]
    assert networks and all(n.compute_dtype == "float16" and n.variable_dtype == "float32" for n in networks)
    history = trainer.fit(dataset.repeat(), epochs=1, steps_per_epoch=8, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in history.values()), history
    # A step whose float16 gradients overflow is skipped and the scale halved (CycleGAN's and
    # Pix2Pix's large cycle and L1 weights, for up to 6 steps); then the updates go through.
    for optimizer in optimizers:
        assert int(optimizer.iterations) >= 1
        assert float(optimizer.dynamic_scale) <= 2.0 ** 15


def test_losses_are_float32_for_float16_logits():
    logits = tf.constant([[3.0], [-2.0]], tf.float16)
    for loss in (losses.discriminator_loss(logits, logits), losses.generator_loss(logits),
                 losses.critic_loss(logits, logits), losses.lsgan_generator_loss(logits)):
        assert loss.dtype == tf.float32
    np.testing.assert_allclose(float(losses.generator_loss(logits)),
                               float(losses.generator_loss(tf.cast(logits, tf.float32))), rtol=1e-6)


def test_float32_training_gives_plain_optimizers():
    trainer, _ = mixed_trainer("dcgan")
    assert not isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)


def test_cli_mixed_precision_run_saves_a_float32_generator_and_resumes_only_as_started(tmp_path, capsys):
    out = tmp_path / "gan"  # the MLP GAN: float16 convolutions on a CPU can be very slow
    assert main(["train", "gan", "--out", str(out), "--quick", "--precision", "mixed_float16"]) == 0
    printed = capsys.readouterr().out
    assert "precision mixed_float16." in printed and "Note: mixed_float16 on a CPU is much slower" in printed
    assert keras.config.dtype_policy().name == "float32"  # the policy is put back after the run
    assert json.loads((out / "run.json").read_text())["precision"] == "mixed_float16"
    generator = keras.saving.load_model(out / "generator.keras", compile=False)
    assert {layer.compute_dtype for layer in generator.layers} == {"float32"}
    images = generator.predict(np.zeros((2, 64), "float32"), verbose=0)
    assert images.dtype == np.float32 and np.all(np.abs(images) <= 1)

    run = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**run, "status": "running"}))  # as if stopped
    assert main(["train", "gan", "--out", str(out), "--quick", "--precision", "float32"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --precision float32 differs from the unfinished run in {out} "
                                               "(precision mixed_float16); resume with the same precision or "
                                               "choose another folder.")


def test_gradients_carry_the_loss_scale_and_skip_together():
    variables = [tf.Variable(2.0), tf.Variable(3.0)]
    with tf.GradientTape() as tape:
        loss = variables[0] * variables[1]
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(), initial_scale=8.0)
    assert [float(g) for g in distribute.gradients(tape, loss, variables, scaled)] == [24.0, 16.0]
    with tf.GradientTape() as tape:
        loss = variables[0] * variables[1] * tf.constant([1.0, np.inf])[1]
    # One gradient overflowed, so both become NaN: the optimizer skips the step for all.
    assert all(np.isnan(float(g)) for g in distribute.gradients(tape, loss, variables, scaled))
    other = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(), initial_scale=2.0)
    grads = [tf.constant(16.0), tf.constant(8.0)]
    assert [float(g) for g in distribute.rescale(grads, scaled, other)] == [4.0, 2.0]
    assert distribute.rescale(grads, keras.optimizers.SGD(), keras.optimizers.SGD()) is grads


def test_a_step_that_overflows_on_one_replica_is_skipped_on_all(mirrored):
    with mirrored.scope():
        variable = keras.Variable(1.0)
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=4.0)
        optimizer.build([variable])

    def step():
        slope = distribute.rows(tf.constant([1.0, np.inf]))[0]  # finite on replica 0, inf on replica 1
        with tf.GradientTape() as tape:
            loss = variable * slope
        optimizer.apply_gradients(zip(distribute.gradients(tape, loss, [variable], optimizer), [variable]))

    mirrored.run(tf.function(step))
    assert float(variable.numpy()) == 1.0  # unchanged on every replica
    assert float(optimizer.dynamic_scale.numpy()) == 2.0  # and the scale halved
