"""The trainers under tf.distribute and in mixed precision.

The trainers know nothing of devices: they take each gradient of ``optimizer.scale_loss(loss)``
and draw noise from ``self.seed_generator``. What several replicas and float16 need is done
from outside (``distribute.optimizer`` and ``distribute.replica_seeds``, as the command line
does), and tested here. conftest.py splits the CPU into two logical devices, so a
MirroredStrategy over them runs every trainer with 2 replicas, as on a machine with 2 GPUs.

Two replicas do not reproduce one device to the last digit, by design: each replica draws its
own noise (one device draws one stream for the whole batch), and BatchNorm and minibatch
statistics are per replica. Slicing one global draw per replica would put device code into
lesson 01's first training step. What is checked instead: the replicas stay in step, the
losses stay finite, and the trainer learns.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons
from gan_lessons import checks, cgan, cyclegan, data, diffusion, distribute, gan, losses, pix2pix, runs, stylegan, wgan
from gan_lessons.__main__ import main

@pytest.fixture(scope="module")
def mirrored():
    """A MirroredStrategy over the CPU's two logical devices (also on a machine with GPUs)."""
    cpus = tuple(device.name for device in tf.config.list_logical_devices("CPU"))
    assert len(cpus) == 2
    return distribute._mirrored(cpus)


def digits(n):
    x, y = data.load_mnist("train", source="bundled", limit=n, verbose=False)
    return x, y


def adam(rate=1e-3):
    return keras.optimizers.Adam(rate, beta_1=0.5, beta_2=0.9)


def in_step(trainer):
    """Every variable (networks, optimizers, seed generators, CycleGAN's image pools, StyleGAN's
    mean w) holds the same value on both replicas, but BatchNorm's moving statistics, which are
    per replica by design (Keras's default)."""
    optimizers = [getattr(trainer, name, None) for name in ("d_optimizer", "g_optimizer", "mapping_optimizer",
                                                            "optimizer")]
    variables = trainer.variables + [v for o in optimizers if o is not None for v in o.variables]
    shared = [v for v in variables if not v.path.endswith(("moving_mean", "moving_variance"))]
    assert len(shared) > 20
    for variable in shared:
        values = [np.asarray(v) for v in variable.value.values]
        assert len(values) == 2
        np.testing.assert_array_equal(values[0], values[1], err_msg=variable.path)
    return {v.path: np.asarray(v.value.values[0]) for v in shared}


@pytest.mark.parametrize("model", ["dcgan", "cgan", "wgan-gp", "wgan-clip", "cyclegan", "pix2pix", "stylegan",
                                   "diffusion"])
def test_two_replicas_stay_in_step_and_learn(mirrored, model):
    """Each family, prepared as the command line prepares it, trains on two replicas: the
    replicas agree on every weight after each epoch, the losses stay finite, and the loss
    that the first player lowers is lower after the last epoch than after the first."""
    gan_lessons.set_seed(0)
    with mirrored.scope():
        trainer, dataset = small_trainer(model)
    history = trainer.fit(repeated(dataset), epochs=3, steps_per_epoch=4, verbose=0).history
    values = in_step(trainer)
    if model == "cyclegan":  # the pools filled (4 images each), the first replica's writes kept on both
        assert values["pool_a/count"] == 4 and values["pool_b/count"] == 4
    if model == "stylegan":  # the mean w, averaged over the replicas, has moved from zero
        assert np.abs(values[trainer.truncation.w_avg.path]).sum() > 0
    assert all(np.all(np.isfinite(values)) for values in history.values()), history
    key = LEARNS[model]
    assert history[key][-1] < history[key][0], (key, history[key])


def test_each_replica_draws_its_own_noise_and_replica_0_draws_as_one_device(mirrored):
    with mirrored.scope():
        two = distribute.replica_seeds(cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4),
                                                           cgan.conditional_discriminator(filters=4), seed=5))
    one = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(filters=4),
                              seed=5)
    first, second = (np.asarray(v) for v in mirrored.experimental_local_results(
        mirrored.run(tf.function(lambda: two.noise(3)))))
    assert not np.array_equal(first, second)  # without replica_seeds both replicas would draw the same
    np.testing.assert_array_equal(first, np.asarray(one.noise(3)))
    assert distribute.replica_seeds(one) is one and np.asarray(one.noise(3)).shape == (3, 8)  # one device: as before


def test_the_optimizer_for_several_replicas_averages_and_skips_overflow_together(mirrored):
    plain = keras.optimizers.Adam()
    assert distribute.optimizer(plain) is plain and plain.scale_loss(3.0) == 3.0  # one device, float32
    with mirrored.scope():
        variable = keras.Variable(1.0)
        sgd = distribute.optimizer(keras.optimizers.SGD(0.1))
        scaled = distribute.optimizer(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1),
                                                                          initial_scale=4.0))
        for optimizer in (sgd, scaled):
            optimizer.build([variable])

    def step(optimizer, slopes):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        with tf.GradientTape() as tape:
            loss = variable * tf.gather(slopes, replica)
            scaled_loss = optimizer.scale_loss(loss)
        optimizer.apply_gradients(zip(tape.gradient(scaled_loss, [variable]), [variable]))

    # Slopes 1 and 3 on the two replicas: the global batch's mean slope is 2, one SGD step of 0.1.
    mirrored.run(tf.function(lambda: step(sgd, tf.constant([1.0, 3.0]))))
    np.testing.assert_allclose(float(variable.numpy()), 1.0 - 0.1 * 2.0, rtol=1e-6)
    # Finite on replica 0, infinite on replica 1: the step is skipped on both, the scale halved.
    mirrored.run(tf.function(lambda: step(scaled, tf.constant([1.0, np.inf]))))
    np.testing.assert_allclose(float(variable.numpy()), 0.8, rtol=1e-6)
    assert float(scaled.dynamic_scale.numpy()) == 2.0


def test_strategies_by_name_and_bad_input(monkeypatch, mirrored):
    gpus = tf.config.list_logical_devices("GPU")
    strategy, where = distribute.make_strategy("one")
    assert strategy.num_replicas_in_sync == 1 and ("GPU" if gpus else "CPU") in where
    assert distribute.make_strategy("auto")[0].num_replicas_in_sync == (len(gpus) if len(gpus) >= 2 else 1)
    with pytest.raises(checks.BadArgument, match="unknown strategy 'two'; choose one of auto, one, mirrored"):
        distribute.make_strategy("two")
    with pytest.raises(checks.BadArgument,
                       match="strategy 'tpu' found no TPU .*pip install tensorflow-tpu.*use --strategy auto"):
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


LEARNS = {"dcgan": "d_loss", "cgan": "d_loss", "wgan-gp": "c_loss", "wgan-clip": "c_loss", "cyclegan": "cycle_loss",
          "pix2pix": "l1", "stylegan": "d_loss", "diffusion": "loss"}
"""For each family, a logged loss that falls in the first few steps."""


def repeated(dataset):
    return dataset.repeat() if isinstance(dataset, tf.data.Dataset) else dataset  # split ones already repeat


def small_trainer(model):
    """A small trainer of each family, prepared as the command line prepares one (under the
    current strategy and policy), and a dataset for it."""
    x, y = digits(16)

    def optimizer(rate=1e-3):
        return distribute.optimizer(adam(rate))

    if model == "dcgan":
        trainer = gan.GAN(gan.dcgan_generator(8, 4), gan.dcgan_discriminator(4))
        data_ = tf.data.Dataset.from_tensor_slices(x).batch(8)
    elif model == "cgan":
        trainer = cgan.ConditionalGAN(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(filters=4),
                                      matching_aware=True)
        data_ = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    elif model.startswith("wgan"):
        constraint = {"gp_weight": 10.0} if model == "wgan-gp" else {"clip_value": 0.05}
        trainer = wgan.WGAN(gan.dcgan_generator(8, 4), wgan.critic(4), n_critic=2, **constraint)
        data_ = distribute.split_dataset(tf.data.Dataset.from_tensor_slices(x).batch(4).batch(2).repeat(),
                                         tf.distribute.get_strategy(), batch_axis=1)
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
        distribute.replica_seeds(trainer)
        trainer.compile(d_optimizer=optimizer(), g_optimizer=optimizer(), mapping_optimizer=optimizer(1e-5))
        return trainer, tf.data.Dataset.from_tensor_slices(x).batch(8)
    else:
        trainer = diffusion.Diffusion(diffusion.unet((28, 28, 1), (8, 16), num_classes=10, emb_dim=16),
                                      diffusion.Schedule.cosine(50))
        distribute.replica_seeds(trainer)
        trainer.compile(optimizer())
        return trainer, tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    distribute.replica_seeds(trainer)
    trainer.compile(d_optimizer=optimizer(), g_optimizer=optimizer())
    return trainer, data_


@pytest.mark.parametrize("model", ["dcgan", "cgan", "wgan-gp", "cyclegan", "pix2pix", "stylegan", "diffusion"])
def test_every_trainer_trains_in_mixed_float16_with_loss_scaling(mixed_float16, model):
    trainer, dataset = small_trainer(model)
    # A few steps, eagerly (conftest.py says why); the conditional GAN compiled, as on a GPU: its label
    # check's arithmetic runs only in a graph, and this keeps one convolutional family compiled in float16.
    trainer.run_eagerly = model != "cgan"
    optimizers = [getattr(trainer, name) for name in ("d_optimizer", "g_optimizer", "mapping_optimizer", "optimizer")
                  if getattr(trainer, name, None) is not None]
    assert optimizers and all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in optimizers)
    networks = [layer for layer in trainer.layers if isinstance(layer, keras.Model)]
    assert networks and all(n.compute_dtype == "float16" and n.variable_dtype == "float32" for n in networks)
    history = trainer.fit(repeated(dataset), epochs=1, steps_per_epoch=8, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in history.values()), history
    # A step whose float16 gradients overflow is skipped and the scale halved (CycleGAN's and
    # Pix2Pix's large cycle and L1 weights, for up to 6 steps); then the updates go through.
    for optimizer in optimizers:
        assert int(optimizer.iterations) >= 1
        assert float(optimizer.dynamic_scale) <= 2.0 ** 15
    if model == "cyclegan":  # the pool keeps float32 images whatever the networks compute in
        assert trainer.pool_a.images.dtype == "float32"


def test_losses_are_float32_for_float16_logits():
    logits = tf.constant([[3.0], [-2.0]], tf.float16)
    for loss in (losses.discriminator_loss(logits, logits), losses.generator_loss(logits),
                 losses.critic_loss(logits, logits), losses.lsgan_generator_loss(logits)):
        assert loss.dtype == tf.float32
    np.testing.assert_allclose(float(losses.generator_loss(logits)),
                               float(losses.generator_loss(tf.cast(logits, tf.float32))), rtol=1e-6)


def test_float32_training_gives_plain_optimizers():
    trainer, _ = small_trainer("dcgan")
    assert not isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)


def test_cli_refuses_mixed_float16_on_a_cpu_in_one_sentence(tmp_path, capsys):
    assert main(["train", "gan", "--out", str(tmp_path / "gan"), "--quick", "--precision", "mixed_float16"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --precision mixed_float16 needs a GPU: a CPU emulates float16 "
                                               "arithmetic, much slower than float32; train in float32 here (the default).")
    assert not (tmp_path / "gan").exists()


def test_mixed_precision_run_saves_a_float32_generator_and_resumes_only_as_started(tmp_path, capsys):
    out = tmp_path / "gan"  # the MLP GAN: float16 convolutions on a CPU can be very slow
    # The Python API trains in mixed_float16 on a CPU too (slowly, with a note), as a GPU would.
    assert runs.train("gan", out, quick=True, precision="mixed_float16")["status"] == "finished"
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
