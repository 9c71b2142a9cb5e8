"""Training on several devices and in mixed precision, from outside the trainers.

The trainers know nothing of devices: each takes its gradients of ``optimizer.scale_loss(loss)``,
as Keras's own ``train_step`` does, and draws its noise from ``self.seed_generator``. Under
``tf.distribute``, ``fit`` runs ``train_step`` on every replica's slice of the global batch and the
optimizers *add up* the replicas' gradients; so the command line, inside the strategy's scope,
passes every optimizer through ``optimizer`` and every trainer through ``replica_seeds``.

Shared state (CycleGAN's image pool, StyleGAN's running mean of w) lives in variables whose
``aggregation`` says how the replicas combine. BatchNorm's statistics, StyleGAN's minibatch
standard deviation and Dropout's masks still see only their replica's slice: valid training, but
not the same numbers as on one device. Tested on a CPU split into two logical devices
(``MirroredStrategy``), in float32 and, on one device, in ``mixed_float16``, and as two worker processes
on one machine (``MultiWorkerMirroredStrategy``); the TPU strategy and any GPU have not been run.
"""

import functools
import json
import os

from gan_lessons import checks

STRATEGIES = ("auto", "one", "mirrored", "tpu", "multi-worker")  # make_strategy's names and --strategy's


# --------------------------------------- what a trainer needs under a strategy, from outside


def replicas():
    """The number of replicas taking part in the current step (1 outside a strategy's ``run``)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()  # None in cross-replica context
    return 1 if context is None else int(context.num_replicas_in_sync)


@functools.lru_cache(maxsize=None)
def _over_replicas(cls):
    """``cls`` (an optimizer class) with ``scale_loss`` also divided by the number of replicas
    and, for a loss-scale optimizer, overflow checked on all replicas together."""
    import keras
    import tensorflow as tf

    def scale_loss(self, loss):  # the sum of the replicas' gradients is then that of the global batch's mean
        return super(subclass, self).scale_loss(loss) / replicas()

    def check_finite(self, grads):  # an overflow on any replica skips the step on all of them
        overflowed = 1.0 - tf.cast(super(subclass, self).check_finite(grads), tf.float32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            overflowed = context.all_reduce(tf.distribute.ReduceOp.SUM, overflowed)
        return overflowed == 0

    methods = {"scale_loss": scale_loss}
    if issubclass(cls, keras.optimizers.LossScaleOptimizer):
        methods["check_finite"] = check_finite
    subclass = type(cls.__name__, (cls,), methods)
    return subclass


def optimizer(optimizer):
    """``optimizer`` for the current strategy and dtype policy (call it inside ``strategy.scope()``):
    under ``mixed_float16`` wrapped in Keras's ``LossScaleOptimizer``, and with several replicas its
    ``scale_loss`` also divides by their number. On one device in float32 it is returned unchanged."""
    import keras
    import tensorflow as tf

    if keras.config.dtype_policy().name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        optimizer.__class__ = _over_replicas(type(optimizer))  # same state, one method more
    return optimizer


class _ReplicaSeeds:
    """Mixed into a trainer's ``keras.random.SeedGenerator``: every replica reads the same
    seed state, so each draw is offset by the replica's number (replica 0 draws as one device)."""

    def next(self, ordered=True):
        import tensorflow as tf

        seed = super().next(ordered)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return seed
        replica = tf.cast(context.replica_id_in_sync_group, seed.dtype)
        return seed + tf.stack([replica * tf.cast(1_000_003, seed.dtype), tf.zeros_like(replica)])


def replica_seeds(trainer):
    """Make each replica draw its own numbers from every ``keras.random.SeedGenerator`` of ``trainer``
    and its layers (without this, every replica would draw the same noise). Returns ``trainer``."""
    import keras

    layers, seen = [trainer], set()
    while layers:
        layer = layers.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        layers.extend(getattr(layer, "layers", []))
        for generator in vars(layer).values():
            if isinstance(generator, keras.random.SeedGenerator) and not isinstance(generator, _ReplicaSeeds):
                generator.__class__ = type(type(generator).__name__, (_ReplicaSeeds, type(generator)), {})
    return trainer


# ------------------------------------------------------------------- the strategies


def _devices(kind):
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices(kind)]


@functools.lru_cache(maxsize=None)
def _mirrored(devices):
    """One MirroredStrategy per set of devices and process: two would number their
    collective operations alike, and their all-reduces would collide."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices))


def make_strategy(name="auto"):
    """A ``tf.distribute`` strategy by name, and a one-line description. ``auto``: ``mirrored`` with two or
    more GPUs, else ``one`` (the default strategy: the GPU if there is one, else the CPU); ``mirrored``: over
    all GPUs, or the CPU's logical devices when it has been split (as the tests do); ``tpu``: the TPU this
    machine reaches (Colab, Kaggle); ``multi-worker``: the machines listed in ``TF_CONFIG``."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise checks.BadArgument(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "multi-worker" and not os.environ.get("TF_CONFIG"):
        raise checks.BadArgument("strategy 'multi-worker' needs the TF_CONFIG environment variable (the cluster's "
                                 "machines and this machine's place among them); set it on every machine, or "
                                 "use --strategy auto.")
    if name == "multi-worker":  # first: it configures TensorFlow's runtime, which listing devices starts
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return strategy, f"MultiWorkerMirroredStrategy over {strategy.num_replicas_in_sync} replicas"
    gpus = _devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) >= 2 else "one"
    if name == "one":
        where = f"one GPU ({gpus[0]})" if gpus else "the CPU"
        return tf.distribute.get_strategy(), f"one device: {where}"
    if name == "mirrored":
        devices = gpus if len(gpus) >= 2 else _devices("CPU")
        if len(devices) < 2:
            raise checks.BadArgument(
                f"strategy 'mirrored' copies the model onto two or more devices, but this machine shows "
                f"{len(gpus)} GPU(s) and {len(_devices('CPU'))} CPU device(s); use --strategy one.")
        return _mirrored(tuple(devices)), f"MirroredStrategy over {len(devices)} devices"
    if name == "tpu":
        try:
            try:
                resolver = tf.distribute.cluster_resolver.TPUClusterResolver()  # named by TPU_NAME
            except ValueError:
                resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")  # a TPU VM
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except Exception as error:  # no TPU reachable: TensorFlow raises several types
            reason = " ".join(str(error).split(".")[0].split())[:160]
            raise checks.BadArgument(f"strategy 'tpu' found no TPU ({reason}); run on a TPU runtime (on Colab's, "
                                     "first pip install tensorflow-tpu) or use --strategy auto.") from None
        strategy = tf.distribute.TPUStrategy(resolver)
        return strategy, f"TPUStrategy over {strategy.num_replicas_in_sync} TPU cores"


def is_chief():
    """False only on a worker of a TF_CONFIG cluster that is not its chief (task "chief", else worker 0)."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        kind, index = config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError):
        return True
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config.get("cluster", {}))


def check_batch(batch_size, strategy):
    """The global batch must split evenly over the replicas; returns the per-replica size."""
    n = strategy.num_replicas_in_sync
    if batch_size % n:
        lower, upper = batch_size - batch_size % n, batch_size + n - batch_size % n
        example = f"{lower} or {upper}" if lower else f"{upper}"
        raise checks.BadArgument(f"a batch of {batch_size} does not split evenly over {n} replicas; "
                                 f"use a multiple of {n}, for example {example}.")
    return batch_size // n


def split_dataset(dataset, strategy, batch_axis=0):
    """``dataset`` (of global batches) as ``strategy`` hands it to ``fit``, split along ``batch_axis``:
    a WGAN's stacked batches (n_critic, batch, ...) along axis 1, so that every critic step on every
    replica sees part of its own batch (``fit`` itself splits axis 0)."""
    import tensorflow as tf

    n = strategy.num_replicas_in_sync
    if n == 1 or batch_axis == 0:
        return dataset  # fit splits axis 0 itself

    def slices(*element):
        parts = [tf.stack(tf.split(part, n, axis=batch_axis)) for part in element]
        return tf.data.Dataset.from_tensor_slices(tuple(parts) if len(parts) > 1 else parts[0])

    def for_machine(context):
        # Replica 0's part, replica 1's part, ..., then the next step's. Replicas are numbered
        # machine by machine: this machine keeps the parts of its own k replicas.
        parts = dataset.flat_map(slices)
        if context.num_input_pipelines == 1:
            return parts
        k, w = n // context.num_input_pipelines, context.input_pipeline_id
        return parts.enumerate().filter(lambda i, part: (i % n) // k == w).map(lambda i, part: part)

    return strategy.distribute_datasets_from_function(for_machine)


# ------------------------------------------------------------------ precision

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # set_precision's names and --precision's


def _tensor_core_gpus():
    """True when there are GPUs and all have compute capability 7.0 or more (tensor cores)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) for gpu in gpus]
    return bool(gpus) and all(tuple(c) >= (7, 0) for c in capabilities)


def set_precision(name="auto"):
    """Set Keras's global dtype policy by name and return it; ``auto``: ``mixed_float16`` on GPUs with
    tensor cores (a T4, V100, A100, L4, H100), else ``float32``. Build networks after this call."""
    import keras

    if name not in PRECISIONS:
        raise checks.BadArgument(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}.")
    if name == "auto":
        name = "mixed_float16" if _tensor_core_gpus() else "float32"
    keras.config.set_dtype_policy(name)
    return name


def float32_copy(model):
    """``model`` rebuilt with every layer in float32 and the same weights: what to save from a
    mixed-precision run, so that whoever loads it gets float32 images on any device."""
    import keras

    def to_float32(config):
        if isinstance(config, dict):
            if "DTypePolicy" in str(config.get("class_name", "")):
                return "float32"
            return {key: to_float32(value) for key, value in config.items()}
        if isinstance(config, list):
            return [to_float32(value) for value in config]
        return config

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # for the layers whose config names no policy
    try:
        copy = model.__class__.from_config(to_float32(model.get_config()))
        if len(copy.inputs) == len(copy.outputs) == 1:  # called with one array, without Keras 3.10's warning
            copy = keras.Model(copy.inputs[0], copy.outputs[0], name=model.name)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy
