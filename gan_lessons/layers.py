"""Custom layers, registered so that saved models load after ``import gan_lessons``."""

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="gan_lessons")
class LabelCheck(keras.layers.Layer):
    """Checks class labels before they reach an Embedding, and returns them as int32 (batch,).

    An Embedding on a GPU silently returns zeros for an id outside its table, so a
    conditional model checks its labels itself: every label must lie in
    0..num_classes-1, and there must be one label per row of the companion input
    (the noise or the image). Eager calls raise ``ValueError``; inside a compiled
    graph the same checks raise ``InvalidArgumentError`` with the same sentence.
    """

    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def call(self, inputs):
        companion, labels = inputs
        if labels.dtype.is_floating:
            labels = tf.round(labels)
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        n_rows = tf.shape(companion)[0]
        n_labels = tf.shape(labels)[0]
        size_msg = "labels must hold one class per row of the noise/images"
        range_msg = f"labels must be integers in 0..{self.num_classes - 1}"
        if tf.executing_eagerly():
            if int(n_rows) != int(n_labels):
                raise ValueError(f"{size_msg}: got {int(n_labels)} labels for {int(n_rows)} rows.")
            values = labels.numpy()
            bad = values[(values < 0) | (values >= self.num_classes)]
            if bad.size:
                raise ValueError(f"{range_msg}; got {np.unique(bad).tolist()}.")
            return labels
        checks = [
            tf.debugging.assert_equal(n_rows, n_labels, message=size_msg),
            tf.debugging.assert_non_negative(labels, message=range_msg),
            tf.debugging.assert_less(labels, self.num_classes, message=range_msg),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
