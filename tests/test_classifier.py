"""Tests of gan_lessons.classifier: the shipped weights are the course's one measuring stick.

Loading reads gan_lessons/bundled/classifier.weights.h5 and never trains; its features, logits, accuracy
and FID floor match the values stored here (measured once when the weights were made); the
reference digits are the bundled held-out ones even when the full MNIST is reachable; the
recipe still trains; a full retrain reproduces the shipped accuracy (slow, opt-in); bad
arguments answer with one sentence.
"""

import os
import random

import keras
import numpy as np
import pytest

import gan_lessons  # noqa: F401  (quiet TensorFlow first)
from gan_lessons import checks, classifier, data, metrics

# Four bundled held-out digits (the first 0, 3, 7 and 9 of classifier.mnist("test")) through
# the shipped weights, measured once when the weights were made: feature units 0-7, the norm
# of all 128 features, and the 10 logits.
DIGITS = [156, 172, 23, 157]
LABELS = [0, 3, 7, 9]
FEATURES_0_TO_7 = [[0.0, 0.0, 0.0, 0.0, 9.73589, 0.0, 0.0, 0.0],
                   [1.68222, 3.24296, 0.0, 5.25377, 0.0, 0.0, 0.0, 0.0],
                   [4.25938, 1.06431, 0.0, 0.228765, 5.6437, 0.0, 0.0, 0.0],
                   [0.0, 5.54043, 0.0, 0.0, 4.20955, 0.0, 0.0, 0.0985292]]
FEATURE_NORMS = [35.5455, 30.0624, 25.162, 27.0458]
LOGITS = [[21.1582, -4.92871, -1.03052, -2.43501, -0.332713, -1.4944, 0.10083, 0.176834, -3.37823, 6.84032],
          [-9.08677, -3.02415, 3.86075, 18.3395, -9.90309, 1.36726, -16.1825, 1.18129, 1.76328, 3.0356],
          [-4.44417, 3.91578, 1.01862, 4.09753, -7.53199, -3.74636, -9.5862, 14.5959, -4.69217, 3.02529],
          [-2.86453, -6.73817, -3.99981, 1.92837, 5.56236, -1.44164, -8.78408, 3.9014, 4.3355, 17.834]]
ACCURACY = 0.988  # on the 1,000 bundled held-out digits
FID_FLOOR = 7.19109  # metrics.fid_floor(1000): 1,000 bundled train digits against the 1,000 held-out ones
LANDMARKS = {"one_class_vs_real": 783.557, "noise_vs_real": 854.007}  # metrics.scale(1000)
QUICK_ACCURACY = 0.7  # train(epochs=2, limit=2000) reached 0.891, 0.807 and 0.863 with seeds 1234, 1 and 2
# The recipe with seeds 1234 (the shipped weights; the same accuracy and floor to the last digit
# again on the CPU that made them), 1 and 2 reached 98.8 %, 98.7 % and 98.5 %. Half a point
# (5 digits of 1,000, about 1.5 binomial standard errors at 98.8 %) covers that spread.
RETRAIN_TOLERANCE = 0.005

@pytest.fixture(autouse=True)
def fresh_classifier():
    classifier.forget()
    yield
    classifier.forget()


def one_sentence(info):
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


def close(actual, stored):
    """float32 inference differs between TensorFlow versions and CPUs in the last digits:
    agree to 1e-4 of the values' scale."""
    stored = np.asarray(stored, dtype=np.float64)
    np.testing.assert_allclose(actual, stored, rtol=1e-4, atol=1e-4 * np.abs(stored).max())


def test_the_shipped_weights_give_the_stored_features_logits_and_accuracy():
    x, y = classifier.mnist("test")
    assert y[DIGITS].tolist() == LABELS
    f = classifier.features(x[DIGITS])
    close(f[:, :8], FEATURES_0_TO_7)
    close(np.linalg.norm(f, axis=1), FEATURE_NORMS)
    close(np.asarray(classifier.load_classifier()(x[DIGITS], training=False)), LOGITS)
    assert classifier.classify(x[DIGITS]).tolist() == np.argmax(LOGITS, axis=1).tolist()
    # One digit of 1,000 more or less would be a different network, not float noise.
    assert classifier.classifier_info()["accuracy"] == pytest.approx(ACCURACY, abs=1e-9)
    assert metrics.fid_floor(1000) == pytest.approx(FID_FLOOR, rel=1e-4)
    landmarks = metrics.scale(1000)
    assert {k: landmarks[k] for k in LANDMARKS} == pytest.approx(LANDMARKS, rel=1e-4)


def test_loading_never_trains_prints_one_line_and_leaves_random_streams_alone(monkeypatch, capsys):
    def draws():
        return random.random(), np.random.rand(), float(keras.random.uniform(()))

    keras.utils.set_random_seed(5)
    without = draws()
    monkeypatch.setattr(keras.Model, "fit", lambda *args, **kwargs: pytest.fail("the classifier was trained"))
    keras.utils.set_random_seed(5)
    classifier.load_classifier()
    assert draws() == without
    out = capsys.readouterr().out
    assert out.startswith(f"Loaded the course's MNIST classifier ({classifier.WEIGHTS_FILE}): ")
    assert out.count("\n") == 1 and "accuracy on 1,000 held-out digits" in out
    classifier.load_classifier()  # a second call in the process prints nothing
    assert capsys.readouterr().out == ""


def test_missing_or_damaged_weights_say_how_to_make_them_again(monkeypatch, tmp_path):
    monkeypatch.setattr(classifier, "weights_path", lambda: tmp_path / classifier.WEIGHTS_FILE)
    with pytest.raises(data.DatasetUnavailable, match="weights are missing .*make them again with python -c") as info:
        classifier.features(np.zeros((1, 28, 28)))
    assert classifier.REMAKE in one_sentence(info)
    (tmp_path / classifier.WEIGHTS_FILE).write_bytes(b"not an HDF5 file")
    with pytest.raises(data.DatasetUnavailable, match="could not be read from .*make them again") as info:
        classifier.load_classifier()
    one_sentence(info)


def test_reference_digits_are_the_bundled_held_out_ones_even_with_the_full_mnist(monkeypatch):
    # Stand in for a machine that reaches the full MNIST: Keras's loader returns other digits.
    other = np.zeros((20, 28, 28), np.uint8), np.arange(20) % 10
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda *args, **kwargs: (other, other))
    assert len(data.load_mnist("test", source="full", verbose=False)[1]) == 20  # the stand-in is seen
    bundled_test = data.load_mnist("test", source="bundled", verbose=False)
    bundled_train = data.load_mnist("train", source="bundled", verbose=False)
    reference, labels = classifier.reference_digits(1000)
    assert np.array_equal(reference, bundled_test[0]) and np.array_equal(labels, bundled_test[1])
    assert np.array_equal(classifier.mnist("train")[0], bundled_train[0])
    assert classifier.classifier_info()["accuracy"] == pytest.approx(ACCURACY, abs=1e-9)


def test_the_recipe_trains():
    # Two epochs on 2,000 digits (10 to 20 s): the recipe's code runs and learns; how well the
    # full recipe reproduces the shipped network is the slow test below.
    model = classifier.train(epochs=2, limit=2000)
    assert classifier.accuracy(model) > QUICK_ACCURACY


@pytest.mark.skipif(os.environ.get("GAN_LESSONS_SLOW") != "1",
                    reason="a full retrain (2.5 to 5 minutes on 2 CPU cores); GAN_LESSONS_SLOW=1 runs it")
def test_retraining_with_the_recipe_reproduces_the_shipped_accuracy():
    """The full recipe (30 epochs on the 4,000 bundled training digits, with its seed)
    again. On the CPU that made the shipped weights it gives the same accuracy and FID floor
    to the last digit; on other CPUs and TensorFlow versions the floating-point order differs, the weights differ
    a little and the accuracy moves within the noise measured across seeds
    (RETRAIN_TOLERANCE). A fraction of the recipe would not tell whether the whole recipe
    still gives the shipped accuracy, and the whole one takes 2.5 to 5 minutes on 2 CPU
    cores (149 s in the last measurement), too long for every test run: it runs with
    GAN_LESSONS_SLOW=1 (test_the_recipe_trains checks the code path in seconds)."""
    model = classifier.train()
    assert classifier.accuracy(model) == pytest.approx(ACCURACY, abs=RETRAIN_TOLERANCE)


@pytest.mark.parametrize("call, message", [
    (lambda: classifier.reference_digits(1), "n must be an integer >= 2; got 1"),
    (lambda: classifier.reference_digits(1001), r"n must be at most 1,000 \(the held-out digits\); got 1001"),
    (lambda: classifier.mnist("validation"), "split must be one of 'train', 'test'; got 'validation'"),
    (lambda: classifier.as_images("images", np.zeros((2, 32, 32, 3))), r"images must be an array of shape "
                                                                         r"\(N, 28, 28, 1\) or .* got shape \(2, 32"),
    (lambda: classifier.features("digits"), "images must be an array of shape .* got 'digits'"),
    (lambda: classifier.features(np.zeros((2, 28, 28)), extractor="net"), "extractor must be a Keras model; got str"),
    (lambda: classifier.feature_extractor(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="tiny")),
     "model must have a layer named 'features', .* got the model 'tiny'"),
    (lambda: classifier.single_input(None), "model must be a Keras model; got NoneType"),
    (lambda: classifier.train(seed=-1), "seed must be an integer from 0 to 2\\*\\*32 - 1; got -1"),
    (lambda: classifier.train(epochs=0), "epochs must be a positive integer; got 0"),
    (lambda: classifier.train(limit=2.5), "limit must be a positive integer; got 2.5"),
    (lambda: classifier.train(verbose="loud"), "verbose must be one of 0, 1, 2; got 'loud'"),
    (lambda: classifier.make_weights("weights.keras"), "path must name a .weights.h5 file .* got 'weights.keras'"),
    (lambda: classifier.accuracy("model"), "model must be a Keras model; got str"),
])
def test_bad_arguments_answer_with_one_sentence(call, message):
    with pytest.raises(checks.BadArgument, match=message) as info:
        call()
    one_sentence(info)
