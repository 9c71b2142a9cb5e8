"""Test settings: every test (and every notebook nbval runs) uses quick mode, and every
cache (Keras's datasets, Matplotlib's fonts) goes to a temporary
folder, never the user's home.

A new trainer's first compiled step costs seconds (tracing), its next steps milliseconds; an
eager step costs a tenth to half a second. So the tests of what a trainer or a callback does (its
losses, schedules, resuming, stopping, float16) train their few steps eagerly
(``trainer.run_eagerly = True``), which runs the same ``train_step`` op by op; tests of more steps,
and the same-seed tests (a reader's rerun is compiled), stay compiled. The compiled step is also
tested where compiling is the point: every family under XLA (test_xla.py), in a graph on two
replicas (test_distribute.py), and through the command line's quick runs; the lessons' quick
mode runs theirs compiled too."""

import atexit
import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="gan-lessons-test-cache-")
# Quick-mode training runs are throwaway: start every test session without them, so that a
# run saved by another Keras version (make test, then make test-colab) is never loaded.
# (Only in the main process: with pytest-xdist the workers start while others may already run.)
if "PYTEST_XDIST_WORKER" not in os.environ:
    shutil.rmtree(os.path.join(os.path.dirname(__file__), "..", "notebooks", "runs", "quick"), ignore_errors=True)
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
# make test runs two test processes on two cores (pytest-xdist): one TensorFlow thread each for the
# work inside an op (and for the notebooks' kernels, which inherit it), not two each that fight.
if "PYTEST_XDIST_WORKER" in os.environ:
    for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
os.environ["GAN_LESSONS_QUICK"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
for variable, folder in (("KERAS_HOME", "keras"),
                         ("MPLCONFIGDIR", "matplotlib"), ("IPYTHONDIR", "ipython"),
                         ("JUPYTER_RUNTIME_DIR", "jupyter-runtime")):
    os.environ[variable] = os.path.join(_CACHE, folder)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gan_lessons  # noqa: E402,F401  (quietens TensorFlow before anything imports it)
import tensorflow as tf  # noqa: E402
from gan_lessons import callbacks  # noqa: E402

# Grappler, TensorFlow's graph optimiser, rewrites each traced function before its first run: worth
# it over a long training, pure cost over a test's few steps (the two-replica tests took about a
# fifth less time without it, one process, two runs each way). Off in the test processes only, the
# command line's in-process runs included; the notebooks' kernels and the command line's
# subprocesses (Ctrl-C, two workers) run with it, as a reader's do.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
# The CPU as two logical devices, before TensorFlow starts: a MirroredStrategy over them
# runs the trainers with 2 replicas, as on a machine with 2 GPUs (tests/test_distribute.py).
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)


def iterations(optimizer):
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


class Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after ``after_epoch`` epochs, keeping a snapshot of every
    trainer weight and optimizer variable as they were then."""

    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after_epoch:
            self.model.snapshot = [np.array(v) for v in self.model.weights]
            self.model.optimizer_snapshot = [[np.array(v) for v in o.variables]
                                             for o in (self.model.d_optimizer, self.model.g_optimizer)]
            raise KeyboardInterrupt


@pytest.fixture
def resume_check(tmp_path):
    """check(make_trainer, dataset, steps, extra=lambda: [callbacks]): fit 4 epochs, interrupted
    after 2; a freshly built trainer (other seed) resumes at epoch 3 with every weight and
    both optimizers' state (iteration counts and every moment slot) as they were."""

    def check(make_trainer, dataset, steps, extra=lambda: []):
        first = make_trainer(0)
        with pytest.raises(KeyboardInterrupt):
            first.fit(dataset, epochs=4, steps_per_epoch=steps, verbose=0,
                      callbacks=extra() + [callbacks.resume(tmp_path / "backup"), Interrupt(2)])
        assert iterations(first.g_optimizer) == 2 * steps
        second = make_trainer(99)  # a new process builds fresh networks: another seed stands in for it
        seen = {}

        class Watch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if not seen:
                    seen["epoch"] = epoch
                    seen["weights"] = [np.array(v) for v in self.model.weights]
                    seen["optimizers"] = [[np.array(v) for v in o.variables]
                                          for o in (self.model.d_optimizer, self.model.g_optimizer)]

        second.fit(dataset, epochs=4, steps_per_epoch=steps, verbose=0,
                   callbacks=extra() + [callbacks.resume(tmp_path / "backup"), Watch()])
        assert seen["epoch"] == 2  # continued, not restarted
        assert len(seen["weights"]) == len(first.snapshot)
        assert all(np.array_equal(a, b) for a, b in zip(first.snapshot, seen["weights"]))
        for before, after in zip(first.optimizer_snapshot, seen["optimizers"]):
            assert len(before) == len(after) > 2  # the iteration count and the moment slots
            assert all(np.array_equal(a, b) for a, b in zip(before, after))
        assert iterations(second.g_optimizer) == 4 * steps
        return first, second

    return check


@pytest.fixture(autouse=True, scope="module")
def fresh_keras_state():
    """Each test module starts from an empty Keras graph state: without this, the models
    and traced functions of earlier modules pile up and later tests slow down."""
    yield
    keras.backend.clear_session()
    import gc

    gc.collect()


# The files that take longest, first (worker seconds in a full run, longest first), so that the
# two test processes finish together; the rest follow in the order they were collected. With
# --no-loadscope-reorder (the Makefile) pytest-xdist hands out the files in this order.
LONGEST_FIRST = ("tests/test_distribute.py", "tests/test_xla.py", "notebooks/04_wgan.ipynb",
                 "notebooks/05_cyclegan.ipynb", "notebooks/08_stylegan.ipynb", "notebooks/09_diffusion.ipynb",
                 "tests/test_diffusion.py", "notebooks/07_evaluating_gans.ipynb", "tests/test_parity.py",
                 "notebooks/06_pix2pix.ipynb", "tests/test_cli.py", "notebooks/01_mlp_gan.ipynb",
                 "tests/test_cyclegan.py", "notebooks/02_dcgan.ipynb", "notebooks/03_conditional_gan.ipynb",
                 "tests/test_stylegan.py", "tests/test_multiworker.py")


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
