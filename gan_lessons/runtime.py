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

QUICK_ENV = "GAN_LESSONS_QUICK"
"""Environment variable that switches every lesson and the CLI to a quick run."""

_TRUE = {"1", "true", "yes", "on"}


def quiet_logs():
    """Keep TensorFlow's C++ and Python log lines out of notebook output.

    Level 3 hides the ``E0000 ... remapper failed`` lines that a CPU ``fit`` prints.
    It is read by TensorFlow when it is first imported; a value the user already
    set is kept. The oneDNN start-up notice is silenced by ``import_tensorflow``
    rather than by turning oneDNN off, which would make CPU training much slower.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "absl", "google.protobuf"):
        warnings.filterwarnings("ignore", module=module)
    # fit() warns that its default shuffle=True is ignored for a tf.data pipeline,
    # which our pipelines already shuffle.
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")


def import_tensorflow():
    """Import TensorFlow with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ start-up lines (the oneDNN notice and an absl warning) are
    written straight to the process's stderr, which Jupyter forwards into the
    notebook; Python-level settings cannot stop them, so they are dropped here.
    Errors are still raised as Python exceptions after stderr is restored.
    """
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr: nothing to hide
        import tensorflow

        return tensorflow
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow


def is_quick():
    """True when ``GAN_LESSONS_QUICK`` is set to 1/true/yes/on."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in _TRUE


CPU_SETTINGS_ENV = "GAN_LESSONS_CPU_SETTINGS"
"""Environment variable that keeps a lesson's CPU settings on a GPU (the values its text describes)."""

_NOT_GIVEN = object()


def has_gpu():
    """True when TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def gpu_settings():
    """True when lessons use their GPU settings: a GPU is present and ``GAN_LESSONS_CPU_SETTINGS``
    is not set to 1/true/yes/on."""
    return has_gpu() and os.environ.get(CPU_SETTINGS_ENV, "").strip().lower() not in _TRUE


def pick(full, quick, gpu=_NOT_GIVEN):
    """Return ``quick`` in quick mode, ``gpu`` (when given) on a GPU, and ``full`` otherwise.

    Lessons write ``EPOCHS = pick(full=40, quick=1)`` so the real value is the one a
    reader sees first, and the test suite runs the same cells with less work. A setting
    with ``gpu=`` (for example ``DATA_LIMIT = pick(full=4000, quick=512, gpu=None)``: all of
    MNIST on a GPU) lets a lesson do more where the hardware allows; ``full`` stays the
    value the lesson's text describes, and ``GAN_LESSONS_CPU_SETTINGS=1`` keeps it on a GPU.
    """
    if is_quick():
        return quick
    if gpu is not _NOT_GIVEN and gpu_settings():
        return gpu
    return full


def set_seed(seed=0):
    """Seed Python, NumPy, TensorFlow and Keras, and ask TensorFlow for
    deterministic kernels, so that a run on the CPU repeats exactly."""
    seed = checks.seed("seed", seed)
    import keras
    import numpy as np
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - very old TensorFlow
        pass
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
                    gpu=f"full mode with the lesson's GPU settings where it has them (more data; "
                        f"{CPU_SETTINGS_ENV}=1 keeps the values the text describes)")
        print(f"{describe_device()} Running in {mode}; seed {seed}.")


def run_dir(name, root="runs"):
    """Folder for a lesson's checkpoints and frames: runs/<name> (runs/quick/<name> in
    quick mode, so a quick test never resumes a full run or the other way round)."""
    from pathlib import Path

    for key, value in (("name", name), ("root", root)):
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise checks.BadArgument(f"{key} must be a non-empty folder name; got {value!r}.")
    path = Path(root) / ("quick" if is_quick() else "") / name
    path.mkdir(parents=True, exist_ok=True)
    return path
