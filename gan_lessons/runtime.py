"""Quick mode, seeds, device detection and quiet logs.

This module must stay importable before TensorFlow: ``quiet_logs()`` only has an
effect when it runs before the first ``import tensorflow`` of the process, which is
why ``gan_lessons/__init__.py`` calls it first.
"""

import logging
import os
import random
import warnings

from gan_lessons import checks

QUICK_ENV = "GAN_LESSONS_QUICK"  # switches every lesson and the command line to a quick run

_TRUE = {"1", "true", "yes", "on"}


def quiet_logs():
    """Keep TensorFlow's C++ and Python log lines out of notebook output (before TensorFlow's first import;
    a value the user set is kept). Level 3 hides the ``E0000 ... remapper failed`` lines of a CPU ``fit``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "absl", "google.protobuf"):
        warnings.filterwarnings("ignore", module=module)
    # fit() warns that its default shuffle=True is ignored for a tf.data pipeline, which ours shuffle already.
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")


def import_tensorflow():
    """Import TensorFlow with file descriptor 2 pointed at /dev/null: its C++ start-up lines (the oneDNN notice,
    an absl warning) go straight to the stderr that Jupyter shows, and no Python setting stops them."""
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr: nothing to hide
        import tensorflow

        return _quiet_python_logger(tensorflow)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return _quiet_python_logger(tensorflow)


def _quiet_python_logger(tensorflow):
    """In an interactive session (a Jupyter kernel) the first ``tf.get_logger()`` call sets the "tensorflow"
    logger back to INFO, and later retracing warnings reach the notebook: make that first call here."""
    tensorflow.get_logger().setLevel(logging.ERROR)
    return tensorflow


def is_quick():
    """True when ``GAN_LESSONS_QUICK`` is set to 1/true/yes/on."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in _TRUE


MORE_ENV = "GAN_LESSONS_MORE"  # opt-in: the larger, unmeasured settings (more data or steps), on any device

_NOT_GIVEN = object()


def has_gpu():
    """True when TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def more():
    """True when ``GAN_LESSONS_MORE`` is set to 1/true/yes/on: lessons use their larger settings."""
    return os.environ.get(MORE_ENV, "").strip().lower() in _TRUE


def pick(full, quick, gpu=_NOT_GIVEN):
    """Return ``quick`` in quick mode, ``gpu`` (when given) with ``GAN_LESSONS_MORE=1``, else ``full``: lessons
    write ``EPOCHS = pick(full=40, quick=1)``, the value the text describes first, and tests run the same cells
    with less work. ``gpu=`` (``pick(full=4000, quick=512, gpu=None)``: all of MNIST) is an unmeasured opt-in
    that a GPU can afford; by default a GPU runs ``full``, faster."""
    if is_quick():
        return quick
    if gpu is not _NOT_GIVEN and more():
        return gpu
    return full


def set_seed(seed=0):
    """Seed Python, NumPy, TensorFlow and Keras; with no GPU visible also ask for deterministic kernels, so that a
    CPU run repeats exactly (on a GPU they are slower, some ops have none, and Keras then compiles without XLA)."""
    seed = checks.seed("seed", seed)
    import keras
    import numpy as np
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if not has_gpu():
        tf.config.experimental.enable_op_determinism()
    return seed


def describe_device():
    """One line naming the device TensorFlow will train on."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
            except Exception:  # pragma: no cover
                names.append(gpu.name)
        return f"Training on {len(gpus)} GPU(s): {', '.join(names)}."
    cores = os.cpu_count() or 1
    return f"Training on the CPU ({cores} cores); no GPU found."


def setup(seed=0, verbose=True):
    """What the first code cell of a lesson calls: seed, report device and mode."""
    set_seed(seed)
    if verbose:
        mode = pick(full="full mode", quick="QUICK mode (few steps, little data)",
                    gpu=f"full mode with more data or steps where a lesson has them ({MORE_ENV}=1: not "
                        f"measured, so times and results may differ from the text)")
        exact = "fast GPU ops: a rerun differs slightly" if has_gpu() else "deterministic ops: a rerun repeats exactly"
        print(f"{describe_device()} Running in {mode}; seed {seed}, {exact}.")


def run_dir(name, root="runs"):
    """Folder for a lesson's checkpoints and frames: runs/<name>, or runs/quick/<name> in quick mode."""
    from pathlib import Path

    for key, value in (("name", name), ("root", root)):
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise checks.BadArgument(f"{key} must be a non-empty folder name; got {value!r}.")
    path = Path(root) / ("quick" if is_quick() else "") / name
    path.mkdir(parents=True, exist_ok=True)
    return path
