"""Training on several devices: the strategies, and the few lines a GAN step needs under them.

Under ``tf.distribute`` (several GPUs with ``MirroredStrategy``, a TPU with ``TPUStrategy``,
several machines with ``MultiWorkerMirroredStrategy``) ``fit`` splits each global batch
into one slice per replica, runs ``train_step`` on every replica at once, and the
optimizers *add up* the replicas' gradients before one shared update. Three things in a
hand-written GAN step follow from that, and the course's trainers do all three:

1. **Divide each gradient by the number of replicas** (``gradients``). The gradient of a
   loss averaged over a replica's slice, divided by the number of replicas and summed
   over the replicas, is the gradient of the average over the global batch.
2. **Draw randomness for the global batch and keep your rows** (``rows``). Every replica
   reads the same seed, so noise drawn per replica would be the same noise on every
   replica. Drawn for the whole global batch and sliced, each replica gets its own noise,
   and the step equals one step on one device with the global batch.
3. **Combine what is not a gradient** yourself: statistics such as a batch mean
   (``mean``), or a store of images shared by the replicas (``gather``).

BatchNorm layers compute their statistics on each replica's slice unless built with
``synchronized=True``; the course's networks keep Keras's default. Outside a strategy
(or with one replica) every function here returns its input unchanged.
"""

import functools
import os

from gan_lessons import checks

STRATEGIES = ("auto", "one", "mirrored", "tpu", "multi-worker")
"""Names accepted by ``make_strategy`` and the command line's ``--strategy``."""


def _context():
    import tensorflow as tf

    return tf.distribute.get_replica_context()  # None in cross-replica context


def replicas():
    """The number of replicas taking part in the current step (1 outside a strategy's ``run``)."""
    context = _context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def global_size(local_size):
    """The global batch size of a step whose replica holds ``local_size`` samples."""
    return local_size * replicas()


def rows(values):
    """This replica's rows of ``values`` drawn for the global batch (axis 0 split evenly,
    replica r keeps slice r, as ``fit`` splits the data)."""
    import tensorflow as tf

    n = replicas()
    if n == 1:
        return values
    local = tf.shape(values)[0] // n
    start = tf.cast(_context().replica_id_in_sync_group, local.dtype) * local
    return values[start:start + local]


def gradients(tape, loss, variables):
    """``tape.gradient(loss, variables)`` divided by the number of replicas: the share of the
    global batch's gradient that this replica adds when the optimizer sums them."""
    import tensorflow as tf

    grads = tape.gradient(loss, variables)
    n = replicas()
    return grads if n == 1 else [None if g is None else tf.math.scalar_mul(1.0 / n, g) for g in grads]


def mean(value):
    """The mean of ``value`` over the replicas (each replica's value weighs the same)."""
    import tensorflow as tf

    return value if replicas() == 1 else _context().all_reduce(tf.distribute.ReduceOp.MEAN, value)


def gather(values):
    """All replicas' ``values`` joined along axis 0, in replica order (the global batch)."""
    return values if replicas() == 1 else _context().all_gather(values, axis=0)


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
    """A ``tf.distribute`` strategy by name; returns (strategy, one-line description).

    ``auto``: MirroredStrategy over all GPUs when there are two or more, else ``one``.
    ``one``: the default strategy (one device: the GPU if there is one, else the CPU).
    ``mirrored``: MirroredStrategy over all GPUs, or over the CPU's logical devices when
    there is no GPU and the CPU has been split into several (as the tests do).
    ``tpu``: TPUStrategy on the TPU this machine reaches (a Colab or Kaggle TPU runtime).
    ``multi-worker``: MultiWorkerMirroredStrategy over the machines listed in ``TF_CONFIG``.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise checks.BadArgument(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    gpus = _devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) >= 2 else "one"
    if name == "one":
        where = f"one GPU ({gpus[0]})" if gpus else "the CPU"
        return tf.distribute.get_strategy(), f"one device: {where}"
    if name == "mirrored":
        devices = gpus or _devices("CPU")
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
            reason = str(error).split(".")[0][:160]
            raise checks.BadArgument(f"strategy 'tpu' found no TPU ({reason}); run on a TPU runtime or use "
                                     "--strategy auto.") from None
        strategy = tf.distribute.TPUStrategy(resolver)
        return strategy, f"TPUStrategy over {strategy.num_replicas_in_sync} TPU cores"
    if not os.environ.get("TF_CONFIG"):
        raise checks.BadArgument("strategy 'multi-worker' needs the TF_CONFIG environment variable (the cluster's "
                                 "machines and this machine's place among them); set it on every machine, or "
                                 "use --strategy auto.")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return strategy, f"MultiWorkerMirroredStrategy over {strategy.num_replicas_in_sync} replicas"


def check_batch(batch_size, strategy):
    """The global batch must split evenly over the replicas; returns the per-replica size."""
    n = strategy.num_replicas_in_sync
    if batch_size % n:
        lower, upper = batch_size - batch_size % n, batch_size + n - batch_size % n
        raise checks.BadArgument(f"a batch of {batch_size} does not split evenly over {n} replicas; "
                                 f"use a multiple of {n}, for example {lower or upper} or {upper}.")
    return batch_size // n


def split_dataset(dataset, strategy, batch_axis=0):
    """``dataset`` (of global batches) as ``strategy`` hands it to ``fit``, split along ``batch_axis``.

    ``fit`` itself splits axis 0; a WGAN's stacked batches, shape (n_critic, batch, ...),
    must be split along axis 1 instead, so that every critic step on every replica sees
    part of its own batch. Replica r gets slice r of every component.
    """
    import tensorflow as tf

    n = strategy.num_replicas_in_sync
    if n == 1 or batch_axis == 0:
        return dataset  # fit splits axis 0 itself

    def slices(*element):
        parts = [tf.stack(tf.split(part, n, axis=batch_axis)) for part in element]
        return tf.data.Dataset.from_tensor_slices(tuple(parts) if len(parts) > 1 else parts[0])

    per_replica = dataset.flat_map(slices)  # replica 0's part, replica 1's part, ..., next step
    return strategy.distribute_datasets_from_function(lambda context: per_replica)
