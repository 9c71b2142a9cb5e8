"""gan_lessons: the small package behind the GAN lessons.

Import it before TensorFlow: it quietens TensorFlow's logs, which only works when
done before TensorFlow is first loaded.
"""

from gan_lessons import runtime as _runtime

_runtime.quiet_logs()

__version__ = "0.1.0"

try:
    _runtime.import_tensorflow()
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "gan_lessons needs TensorFlow 2.20 or newer: install it with pip install 'gan-lessons[cpu]' "
        "(on a GPU machine 'tensorflow'; on a TPU runtime such as Colab's, which has none, 'tensorflow-tpu')."
    ) from exc

from gan_lessons import checks, classifier, data, losses, metrics, plots, runtime  # noqa: E402,F401
from gan_lessons import callbacks, cgan, cyclegan, diffusion, digit_tasks, gan, pix2pix, stylegan, wgan  # noqa: E402,F401
from gan_lessons.runtime import is_quick, pick, set_seed, setup  # noqa: E402,F401
