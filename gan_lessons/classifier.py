"""The course's MNIST classifier: the eye through which every metric looks at digits.

Inception-v3, the usual FID's network, would have to be downloaded and knows little about 28x28 digits;
a small CNN looks at digits instead. Its 128-unit penultimate layer is the feature space of FID, KID,
precision/recall and density/coverage, its softmax the p(y|x) of the Inception Score. A metric is only
comparable through one fixed network, so the trained weights ship in ``bundled/`` (made by ``RECIPE``, made
again by ``make_weights()``), and the reference digits are the bundled held-out ones on every machine.
"""

import math
import random
import time
from pathlib import Path

import keras
import numpy as np

from gan_lessons import checks, data

WEIGHTS_FILE = "classifier.weights.h5"  # the shipped weights, beside the bundled digits
RECIPE = {"seed": 1234, "epochs": 30, "batch_size": 64, "learning_rate": 1e-3}
"""How the shipped weights were made (``train``): Adam, its learning rate decaying to 0 along a cosine,
over ``epochs`` passes of shuffled batches of the 4,000 bundled training digits."""
NUM_CLASSES = 10
FEATURE_LAYER = "features"
REMAKE = "python -c 'from gan_lessons import classifier; classifier.make_weights()'"
"""The command that makes the weights file again with ``RECIPE`` (2.5 to 5 minutes on 2 CPU cores)."""

_state = {"classifier": None, "extractor": None, "info": None, "data": {}, "memo": {}}


def forget():
    """Drop what this process holds (classifier, digits, remembered values)."""
    _state.update(classifier=None, extractor=None, info=None, data={}, memo={})


def remember(key, compute):
    """``compute()`` once per process and key, until ``forget()`` (for FID floors)."""
    if key not in _state["memo"]:
        _state["memo"][key] = compute()
    return _state["memo"][key]


def mnist(split):
    """A split ("train": 4,000, or "test": the 1,000 held out) of the bundled digits, loaded once per process."""
    checks.choice("split", split, ("train", "test"))
    if split not in _state["data"]:
        _state["data"][split] = data.load_mnist(split=split, source="bundled", verbose=False)
    return _state["data"][split]


def reference_digits(n=1000):
    """(images, labels): ``n`` of the 1,000 bundled held-out digits, class-balanced, which neither a generator
    nor the classifier trained on: what every generator is compared with."""
    x, y = mnist("test")
    if checks.count("n", n, minimum=2) > len(y):
        raise checks.BadArgument(f"n must be at most {len(y):,} (the held-out digits); got {n!r}.")
    return data.balanced(x, y, n)


def as_images(name, images, minimum=1):
    """``images`` as finite float32 (N, 28, 28, 1), or a BadArgument naming ``name``."""
    x = checks.array(name, images, "(N, 28, 28, 1)", "(N, 28, 28)")
    return finite_rows(name, x[..., None] if x.ndim == 3 else x, minimum, "images")


def finite_rows(name, x, minimum, unit):
    """``x`` if it holds at least ``minimum`` rows (of ``unit``), all finite, or a BadArgument naming ``name``."""
    if len(x) < minimum:
        raise checks.BadArgument(f"{name} must hold at least {minimum} {unit}; got {len(x)}.")
    if not np.all(np.isfinite(x)):
        raise checks.BadArgument(f"{name} holds {int(np.sum(~np.isfinite(x)))} NaN or infinite value(s); "
                                 "every value must be finite.")
    return x


def architecture():
    """The classifier's network, untrained: two conv blocks (32 and 64 filters, each halving the size), a
    128-unit feature layer and 10 logits; random shifts and rotations in training only."""
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


def train(seed=RECIPE["seed"], epochs=RECIPE["epochs"], limit=None, verbose=0):
    """A classifier trained from scratch with ``RECIPE`` on the bundled training digits (``limit``: a
    class-balanced subset, for a quick check), after ``keras.utils.set_random_seed(seed)``."""
    seed, epochs = checks.seed("seed", seed), checks.count("epochs", epochs)
    checks.choice("verbose", verbose, (0, 1, 2))
    x, y = mnist("train") if limit is None else data.balanced(*mnist("train"), limit)
    keras.utils.set_random_seed(seed)
    model = architecture()
    steps = epochs * math.ceil(len(y) / RECIPE["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(RECIPE["learning_rate"], steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=RECIPE["batch_size"], epochs=epochs, shuffle=True, verbose=verbose)
    return model


def accuracy(model):
    """Share of the 1,000 bundled held-out digits that ``model`` (images -> logits) reads right."""
    x, y = mnist("test")
    return float(np.mean(_predict(single_input(model), x).argmax(axis=1) == y))


def weights_path():
    """Where the shipped weights lie: beside the bundled digits."""
    return data.bundled_path().with_name(WEIGHTS_FILE)


def make_weights(path=None):
    """Train with ``RECIPE`` and save the weights to ``path`` (default: ``weights_path()``,
    replacing the shipped file). Prints the time taken and the held-out accuracy."""
    path = weights_path() if path is None else Path(path)
    if not path.name.endswith(".weights.h5") or not path.parent.is_dir():
        raise checks.BadArgument(f"path must name a .weights.h5 file in an existing folder; got {str(path)!r}.")
    start = time.perf_counter()
    model, plain = train(verbose=2), architecture()
    plain.set_weights(model.get_weights())  # without the optimizer's state, which training no longer needs
    plain.save_weights(path)
    print(f"Trained in {time.perf_counter() - start:.0f} s: {accuracy(model):.1%} accuracy on the held-out "
          f"digits; saved to {path}.")
    return model


def _predict(model, images, batch_size=500):
    return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def load_classifier(verbose=True):
    """The course's MNIST classifier (images -> 10 logits), read once per process from the shipped weights;
    the first call prints its accuracy on the held-out digits. The caller's random streams are left alone."""
    if _state["classifier"] is None:
        path = weights_path()
        python_state = random.getstate()  # building draws the initial weights' seeds from Python's random
        model = architecture()
        random.setstate(python_state)
        try:
            model.load_weights(path)
        except Exception as exc:  # a missing, damaged or foreign file
            trouble = (f"could not be read from {path} ({type(exc).__name__})" if path.is_file()
                       else f"are missing ({path})")
            raise data.DatasetUnavailable(f"The course classifier's weights {trouble}: make them again with "
                                          f"{REMAKE}, which trains it with the recipe that made them.") from None
        _state.update(classifier=model, extractor=feature_extractor(model))
        _state["info"] = {"accuracy": accuracy(model), "weights": str(path), "test_digits": len(mnist("test")[1])}
        if verbose:
            print(f"Loaded the course's MNIST classifier ({WEIGHTS_FILE}): {_state['info']['accuracy']:.1%} "
                  f"accuracy on {_state['info']['test_digits']:,} held-out digits.")
    return _state["classifier"]


def as_model(name, value, inputs=None):
    """``value`` if it is a Keras model (with a number of inputs among ``inputs``), or a BadArgument."""
    if not isinstance(value, keras.Model):
        raise checks.BadArgument(f"{name} must be a Keras model; got {type(value).__name__} {value!r:.60}.")
    if inputs is not None and len(value.inputs) not in inputs:
        raise checks.BadArgument(f"{name} must take {' or '.join(map(str, inputs))} input(s); the model "
                                 f"{value.name!r} takes {len(value.inputs)}.")
    return value


def single_input(model):
    """A one-input model that takes one array: Keras 3.10 lists the input of a model loaded
    from disk and warns when that model is called with a bare array."""
    return keras.Model(model.inputs[0], model.outputs[0]) if len(as_model("model", model).inputs) == 1 else model


def feature_extractor(model):
    """images -> the 128 activations of ``model``'s feature layer (trained or not)."""
    if FEATURE_LAYER not in [layer.name for layer in as_model("model", model).layers]:
        raise checks.BadArgument(f"model must have a layer named {FEATURE_LAYER!r}, as architecture() builds; "
                                 f"got the model {model.name!r}, which has none.")
    return keras.Model(model.inputs[0], model.get_layer(FEATURE_LAYER).output)


def classifier_info():
    """The classifier's ``accuracy`` on the held-out digits, its ``weights`` file and ``test_digits``."""
    load_classifier(verbose=False)
    return dict(_state["info"])


def features(images, extractor=None):
    """The classifier's (or another ``extractor``'s) 128 penultimate activations (N, 128) of images in [-1, 1]."""
    x = as_images("images", images)
    if extractor is None:
        load_classifier()
    extractor = _state["extractor"] if extractor is None else as_model("extractor", extractor)
    return _predict(extractor, x).astype(np.float64)


def probabilities(images):
    """The classifier's p(y | x): softmax of its logits, (N, 10), rows summing to 1."""
    logits = _predict(load_classifier(), as_images("images", images)).astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classify(images):
    """The digit class (0..9) the classifier reads in each image, as int64."""
    return _predict(load_classifier(), as_images("images", images)).argmax(axis=1).astype(np.int64)
