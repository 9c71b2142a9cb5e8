"""The course's MNIST classifier: the eye through which every metric looks at digits.

Why our own classifier? The usual FID runs images through Inception-v3, trained on
ImageNet photographs: it would have to be downloaded (the lessons run offline) and it
knows little about 28x28 digits. A small CNN is trained once on the MNIST train split
and cached on disk; its 128-unit penultimate layer is the feature space of FID, KID,
precision/recall and density/coverage, its softmax the p(y|x) of the Inception Score.
"""

import json
import math
import os
from pathlib import Path

import keras
import numpy as np

from gan_lessons import checks, data, runtime

VERSION = "2"
"""Part of the cache key: change it when the classifier's recipe changes."""
CACHE_ENV = "GAN_LESSONS_CACHE"
"""Environment variable naming the cache folder (default ~/.cache/gan-lessons)."""
NUM_CLASSES = 10
FEATURE_LAYER = "features"
SOURCE = "auto"
"""Which MNIST the classifier and the reference digits come from; see ``data.load_mnist``."""

_state = {"classifier": None, "extractor": None, "info": None, "data": {}, "memo": {}}


def forget():
    """Drop what this process holds (classifier, digits, remembered values), so that the
    next call reads the settings (quick mode, ``SOURCE``, cache folder) afresh."""
    _state.update(classifier=None, extractor=None, info=None, data={}, memo={})


def remember(key, compute):
    """``compute()`` once per process and key, until ``forget()`` (for FID floors)."""
    if key not in _state["memo"]:
        _state["memo"][key] = compute()
    return _state["memo"][key]


def mnist(split):
    """A split ("train" or "test") of ``SOURCE``'s MNIST, loaded once per process."""
    if (SOURCE, split) not in _state["data"]:
        _state["data"][SOURCE, split] = data.load_mnist(split=split, source=SOURCE, verbose=False)
    return _state["data"][SOURCE, split]


def reference_digits(n=1000):
    """Held-out test digits, class-balanced (neither a generator nor the classifier trained
    on them): what every generator is compared with. Returns (images, labels)."""
    return data.balanced(*mnist("test"), checks.count("n", n, minimum=2))


def as_images(name, images, minimum=1):
    """``images`` as float32 (N, 28, 28, 1), or a BadArgument naming ``name``."""
    x = np.asarray(images, dtype=np.float32)
    x = x[..., None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise checks.BadArgument(f"{name} must have shape (N, 28, 28, 1) or (N, 28, 28); got {np.shape(images)}.")
    if len(x) < minimum:
        raise checks.BadArgument(f"{name} must hold at least {minimum} image(s); got {len(x)}.")
    return x


def cache_dir():
    """Folder of the cached classifier: $GAN_LESSONS_CACHE or ~/.cache/gan-lessons."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gan-lessons")
    path.mkdir(parents=True, exist_ok=True)
    return path


def architecture():
    """The classifier's network, untrained: two conv blocks, a 128-unit feature layer, 10
    logits. Random shifts and rotations (active only in training) keep it from
    memorising stroke positions."""
    from keras import layers

    inputs = keras.Input(shape=(28, 28, 1), name="image")
    h = layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=-1.0, seed=1)(inputs)
    h = layers.RandomRotation(0.03, fill_mode="constant", fill_value=-1.0, seed=2)(h)
    for filters in (32, 64):
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D()(h)
    h = layers.Dropout(0.3, seed=3)(layers.Flatten()(h))
    h = layers.Dropout(0.3, seed=4)(layers.Dense(128, activation="relu", name=FEATURE_LAYER)(h))
    return keras.Model(inputs, layers.Dense(NUM_CLASSES, name="logits")(h), name="mnist_classifier")


def _train_classifier(x, y, quick):
    keras.utils.set_random_seed(1234)  # the same classifier whatever the caller's seed
    model = architecture()
    if quick:
        x, y = data.balanced(x, y, 2000)
    epochs = 3 if quick else (5 if len(y) > 5000 else 30)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, epochs * math.ceil(len(y) / 64))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
    return model


def _predict(model, images, batch_size=500):
    return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def load_classifier(verbose=True, quick=None):
    """The course's MNIST classifier (images -> 10 logits), trained once and cached.

    The cache key holds the data source, quick mode (``quick``, by default the
    process's quick mode) and ``VERSION``. The first call of a process prints one line:
    trained or loaded, and the accuracy on held-out digits. The caller's random streams
    end in a state that depends only on the caller's seed, not on whether the cache
    existed, so a lesson repeats exactly.
    """
    if _state["classifier"] is not None:
        return _state["classifier"]
    follow_on_seed = int(np.random.randint(0, 2**31 - 1))
    quick = runtime.is_quick() if quick is None else bool(quick)
    (x_train, y_train), (x_test, y_test) = mnist("train"), mnist("test")
    source = "full" if len(y_train) > 5000 else "bundled"
    name = f"mnist_classifier_{source}_{'quick' if quick else 'full'}_v{VERSION}"
    path, meta_path = cache_dir() / f"{name}.keras", cache_dir() / f"{name}.json"
    model, how = None, "Loaded the cached"
    if path.is_file() and meta_path.is_file():
        try:
            model, meta = keras.saving.load_model(path, compile=False), json.loads(meta_path.read_text())
        except Exception:  # a damaged cache file: train again
            model = None
    if model is None:
        model, how = _train_classifier(x_train, y_train, quick), "Trained the"
        accuracy = float(np.mean(_predict(model, x_test).argmax(axis=1) == y_test))
        meta = {"accuracy": accuracy, "source": source, "quick": quick, "train_digits": len(y_train)}
        # Temporary names first, so that a concurrent reader never sees half a file.
        tmp, tmp_meta = path.with_name(f"{name}.{os.getpid()}.tmp.keras"), meta_path.with_suffix(f".{os.getpid()}")
        model.save(tmp)
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp, path)
        os.replace(tmp_meta, meta_path)
    keras.utils.set_random_seed(follow_on_seed)
    model = single_input(model)
    _state.update(classifier=model, info=meta, extractor=feature_extractor(model))
    if verbose:
        print(f"{how} MNIST classifier ({meta['source']} data{', quick' if meta['quick'] else ''}): "
              f"{meta['accuracy']:.1%} accuracy on {len(y_test):,} held-out test digits.")
    return model


def single_input(model):
    """A one-input model that takes one array: Keras 3.10 lists the input of a model loaded
    from disk and warns when that model is called with a bare array."""
    return keras.Model(model.inputs[0], model.outputs[0]) if len(model.inputs) == 1 else model


def feature_extractor(model):
    """images -> the 128 activations of ``model``'s feature layer (trained or not)."""
    return keras.Model(model.inputs[0], model.get_layer(FEATURE_LAYER).output)


def classifier_info():
    """Facts about the classifier: held-out accuracy, data source, quick flag."""
    load_classifier(verbose=False)
    return dict(_state["info"])


def features(images, extractor=None):
    """The classifier's 128-unit penultimate activations (N, 128) for images in [-1, 1]
    (or those of another ``extractor``, such as an untrained network's)."""
    x = as_images("images", images)
    if extractor is None:
        load_classifier()
    return _predict(extractor or _state["extractor"], x).astype(np.float64)


def probabilities(images):
    """The classifier's p(y | x): softmax of its logits, (N, 10), rows summing to 1."""
    logits = _predict(load_classifier(), as_images("images", images)).astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classify(images):
    """The digit class (0..9) the classifier reads in each image, as int64."""
    return _predict(load_classifier(), as_images("images", images)).argmax(axis=1).astype(np.int64)
