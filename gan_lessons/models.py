"""Model builders: plain functions returning ``keras.Model``.

Generators map noise (batch, latent_dim) to images (batch, 28, 28, 1) in [-1, 1]
(tanh output). Discriminators and critics map images to one unbounded score per
image (a logit for a discriminator, no sigmoid).
"""

import keras
from keras import layers

from gan_lessons.layers import LabelCheck

IMAGE_SHAPE = (28, 28, 1)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return value


def _units(name, value):
    try:
        units = tuple(value)
    except TypeError:
        units = None
    if not units or any(isinstance(u, bool) or not isinstance(u, int) or u <= 0 for u in units):
        raise ValueError(f"{name} must be a non-empty sequence of positive integers; got {value!r}.")
    return units


def _image_shape(image_shape):
    shape = tuple(image_shape)
    if len(shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in shape):
        raise ValueError(f"image_shape must be (height, width, channels) of positive integers; got {image_shape!r}.")
    return shape


# ----------------------------------------------------------------------- MLP GAN


def mlp_generator(latent_dim=64, hidden_units=(256, 512, 1024), image_shape=IMAGE_SHAPE, name="generator"):
    """Dense -> BatchNorm -> LeakyReLU blocks, then a tanh layer reshaped to an image."""
    _positive_int("latent_dim", latent_dim)
    hidden_units = _units("hidden_units", hidden_units)
    image_shape = _image_shape(image_shape)
    z = keras.Input(shape=(latent_dim,), name="noise")
    h = z
    for units in hidden_units:
        h = layers.Dense(units, use_bias=False)(h)
        h = layers.BatchNormalization()(h)
        h = layers.LeakyReLU(0.2)(h)
    size = image_shape[0] * image_shape[1] * image_shape[2]
    h = layers.Dense(size, activation="tanh")(h)
    image = layers.Reshape(image_shape, name="image")(h)
    return keras.Model(z, image, name=name)


def mlp_discriminator(hidden_units=(512, 256), image_shape=IMAGE_SHAPE, dropout=0.3, name="discriminator"):
    """Flatten -> Dense -> LeakyReLU (-> Dropout) blocks -> one logit."""
    hidden_units = _units("hidden_units", hidden_units)
    image_shape = _image_shape(image_shape)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
    x = keras.Input(shape=image_shape, name="image")
    h = layers.Flatten()(x)
    for units in hidden_units:
        h = layers.Dense(units)(h)
        h = layers.LeakyReLU(0.2)(h)
        if dropout:
            h = layers.Dropout(dropout)(h)
    logit = layers.Dense(1, name="logit")(h)
    return keras.Model(x, logit, name=name)


# ------------------------------------------------------------------------- DCGAN


def _bn_relu(h):
    """BatchNorm, then ReLU: the hidden-layer pattern of the DCGAN generators."""
    h = layers.BatchNormalization()(h)
    return layers.ReLU()(h)


def _dcgan_trunk(h, filters):
    """The conditional generator's trunk: Dense to 7x7, then two transposed convolutions.

    (inputs) -> (7, 7, 2f) -> (14, 14, f) -> (28, 28, 1), BatchNorm and ReLU inside.
    """
    h = _bn_relu(layers.Dense(7 * 7 * 2 * filters, use_bias=False)(h))
    h = layers.Reshape((7, 7, 2 * filters))(h)
    h = _bn_relu(layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(h))
    return layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh", name="image")(h)


def dcgan_generator(latent_dim=64, filters=64, name="generator"):
    """DCGAN generator: project z to 7x7 feature maps, refine, and upsample twice to 28x28.

    Shapes (f = ``filters``):
    (latent_dim,) -dense-> (7, 7, 2f) -3x3 conv-> (7, 7, 2f) -5x5 transposed, stride 2->
    (14, 14, f) -5x5 transposed, stride 2-> (28, 28, f/2) -3x3 conv, tanh-> (28, 28, 1).
    BatchNorm and ReLU after every hidden layer, tanh at the output. The stride-1
    convolutions at 7x7 and at 28x28 give the generator room to shape strokes before
    and after the upsampling, which the two-layer version lacks.
    """
    _positive_int("latent_dim", latent_dim)
    _positive_int("filters", filters)
    z = keras.Input(shape=(latent_dim,), name="noise")
    h = _bn_relu(layers.Dense(7 * 7 * 2 * filters, use_bias=False)(z))
    h = layers.Reshape((7, 7, 2 * filters))(h)
    h = _bn_relu(layers.Conv2D(2 * filters, 3, padding="same", use_bias=False)(h))
    h = _bn_relu(layers.Conv2DTranspose(filters, 5, strides=2, padding="same", use_bias=False)(h))
    h = _bn_relu(layers.Conv2DTranspose(max(filters // 2, 1), 5, strides=2, padding="same", use_bias=False)(h))
    image = layers.Conv2D(1, 3, padding="same", activation="tanh", name="image")(h)
    return keras.Model(z, image, name=name)


def _conv_trunk(x, filters, norm, refine=False):
    """28x28 -> 14x14 -> 7x7 with stride-2 convolutions and LeakyReLU (``refine``: then a
    3x3 convolution at 7x7), then flatten."""

    def norm_and_activation(h):
        if norm == "batch":
            h = layers.BatchNormalization()(h)
        elif norm == "layer":
            h = layers.LayerNormalization()(h)
        return layers.LeakyReLU(0.2)(h)

    h = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
    h = layers.LeakyReLU(0.2)(h)
    h = norm_and_activation(layers.Conv2D(2 * filters, 4, strides=2, padding="same", use_bias=norm is None)(h))
    if refine:
        h = norm_and_activation(layers.Conv2D(2 * filters, 3, padding="same", use_bias=norm is None)(h))
    return layers.Flatten()(h)


_NORMS = ("batch", "layer", None)


def dcgan_discriminator(filters=64, norm="batch", dropout=0.0, refine=False, name="discriminator"):
    """DCGAN discriminator: two stride-2 convolutions with LeakyReLU, then one logit.

    Shapes: (28, 28, 1) -> (14, 14, f) -> (7, 7, 2f) -> 1. ``norm`` is "batch"
    (DCGAN), "layer" or None (a WGAN-GP critic must not use BatchNorm).

    ``refine=True`` adds a 3x3 convolution at 7x7 (2f maps, the same norm and
    LeakyReLU) before the logit, the mirror image of the generator's 3x3 convolution at
    7x7. Each 7x7 feature of the two-layer trunk sees a 10x10 patch of the image and
    the logit only adds them up; after the extra layer each sees 18x18, most of a digit,
    and the features are combined non-linearly, so D can judge a digit's overall shape.
    """
    _positive_int("filters", filters)
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of 'batch', 'layer' or None; got {norm!r}.")
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = _conv_trunk(x, filters, norm, refine=refine)
    if dropout:
        h = layers.Dropout(dropout)(h)
    return keras.Model(x, layers.Dense(1, name="logit")(h), name=name)


def critic(filters=64, norm=None, refine=False, name="critic"):
    """A WGAN critic: the DCGAN discriminator's shape with no BatchNorm, an unbounded score.

    ``refine=True`` adds the 3x3 convolution at 7x7 of ``dcgan_discriminator(refine=True)``.
    """
    _positive_int("filters", filters)
    if norm == "batch":
        raise ValueError("norm must be 'layer' or None for a critic: BatchNorm mixes samples, which breaks the gradient penalty.")
    if norm not in _NORMS:
        raise ValueError(f"norm must be 'layer' or None; got {norm!r}.")
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    h = _conv_trunk(x, filters, norm, refine=refine)
    return keras.Model(x, layers.Dense(1, name="score")(h), name=name)


# ------------------------------------------------------------------ conditional


def conditional_generator(latent_dim=64, num_classes=10, embed_dim=32, filters=64, name="conditional_generator"):
    """G(z, y): the label's embedding is concatenated to the noise, then the DCGAN trunk.

    Inputs: noise (batch, latent_dim) float32 and label (batch,) or (batch, 1) int.
    """
    _positive_int("latent_dim", latent_dim)
    _positive_int("num_classes", num_classes)
    _positive_int("embed_dim", embed_dim)
    _positive_int("filters", filters)
    z = keras.Input(shape=(latent_dim,), name="noise")
    y = keras.Input(shape=(1,), dtype="int32", name="label")
    label = LabelCheck(num_classes, name="label_check")([z, y])
    e = layers.Embedding(num_classes, embed_dim, name="label_embedding")(label)
    h = layers.Concatenate()([z, e])
    return keras.Model([z, y], _dcgan_trunk(h, filters), name=name)


def conditional_discriminator(num_classes=10, filters=64, norm="batch", name="conditional_discriminator"):
    """D(x, y): the label's embedding is drawn as a second 28x28 channel next to the image.

    D must see the label: otherwise a perfect "3" would pass as real even when
    G was asked for a "7", and G would have no reason to obey the label.
    """
    _positive_int("num_classes", num_classes)
    _positive_int("filters", filters)
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of 'batch', 'layer' or None; got {norm!r}.")
    x = keras.Input(shape=IMAGE_SHAPE, name="image")
    y = keras.Input(shape=(1,), dtype="int32", name="label")
    label = LabelCheck(num_classes, name="label_check")([x, y])
    plane = layers.Embedding(num_classes, 28 * 28, name="label_embedding")(label)
    plane = layers.Reshape((28, 28, 1))(plane)
    h = _conv_trunk(layers.Concatenate()([x, plane]), filters, norm)
    return keras.Model([x, y], layers.Dense(1, name="logit")(h), name=name)


# --------------------------------------------------------------------- CycleGAN


def _instance_norm():
    """Instance normalisation: each image's channels are normalised on their own.

    ``GroupNormalization(groups=-1)`` puts every channel in its own group, which is
    exactly instance norm (with a learned scale and shift per channel).
    """
    return layers.GroupNormalization(groups=-1, epsilon=1e-5)


def _translation_shape(image_shape):
    shape = _image_shape(image_shape)
    if shape[0] % 4 or shape[1] % 4:
        raise ValueError(f"image_shape must have a height and width divisible by 4 (two halvings); got {image_shape!r}.")
    return shape


def resnet_generator(image_shape=IMAGE_SHAPE, filters=32, residual_blocks=3, out_channels=None,
                     name="generator"):
    """CycleGAN's ResNet generator: an image in [-1, 1] -> an image in [-1, 1] of the same size.

    Shapes for 28x28 digits and f = ``filters``:
    (28, 28, C) -7x7-> (28, 28, f) -s2-> (14, 14, 2f) -s2-> (7, 7, 4f)
    -> ``residual_blocks`` x [3x3 conv, IN, ReLU, 3x3 conv, IN, + input] at (7, 7, 4f)
    -> transposed s2 -> (14, 14, 2f) -> transposed s2 -> (28, 28, f) -7x7, tanh-> (28, 28, out_channels).
    Every convolution except the last is followed by instance normalisation and ReLU.
    The residual blocks change the image's style while the skips carry its content.
    """
    image_shape = _translation_shape(image_shape)
    _positive_int("filters", filters)
    if isinstance(residual_blocks, bool) or not isinstance(residual_blocks, int) or residual_blocks < 0:
        raise ValueError(f"residual_blocks must be a non-negative integer; got {residual_blocks!r}.")
    out_channels = image_shape[-1] if out_channels is None else _positive_int("out_channels", out_channels)

    def conv_block(h, units, kernel, strides=1, transpose=False):
        conv = layers.Conv2DTranspose if transpose else layers.Conv2D
        h = conv(units, kernel, strides=strides, padding="same", use_bias=False)(h)
        h = _instance_norm()(h)
        return layers.ReLU()(h)

    x = keras.Input(shape=image_shape, name="image")
    h = conv_block(x, filters, 7)
    h = conv_block(h, 2 * filters, 3, strides=2)
    h = conv_block(h, 4 * filters, 3, strides=2)
    for _ in range(residual_blocks):
        r = conv_block(h, 4 * filters, 3)
        r = layers.Conv2D(4 * filters, 3, padding="same", use_bias=False)(r)
        r = _instance_norm()(r)
        h = layers.Add()([h, r])
    h = conv_block(h, 2 * filters, 3, strides=2, transpose=True)
    h = conv_block(h, filters, 3, strides=2, transpose=True)
    y = layers.Conv2D(out_channels, 7, padding="same", activation="tanh", name="translated")(h)
    return keras.Model(x, y, name=name)


def patchgan_discriminator(image_shape=IMAGE_SHAPE, filters=32, name="patch_discriminator"):
    """PatchGAN discriminator: a grid of scores, each judging one patch of the image.

    (28, 28, C) -4x4 s2, LeakyReLU-> (14, 14, f) -4x4 s2, IN, LeakyReLU-> (7, 7, 2f)
    -3x3 s1-> (7, 7, 1).
    Each of the 7x7 scores sees an 18x18 window (its receptive field) around its 4x4
    cell, so it judges local strokes and texture, not the whole digit; the windows
    overlap, and the loss averages over all of them. Scores are unbounded: the
    least-squares GAN loss pushes them towards 1 (real) or 0 (fake).
    """
    image_shape = _translation_shape(image_shape)
    _positive_int("filters", filters)
    x = keras.Input(shape=image_shape, name="image")
    h = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
    h = layers.LeakyReLU(0.2)(h)
    h = layers.Conv2D(2 * filters, 4, strides=2, padding="same", use_bias=False)(h)
    h = _instance_norm()(h)
    h = layers.LeakyReLU(0.2)(h)
    scores = layers.Conv2D(1, 3, strides=1, padding="same", name="patch_scores")(h)
    return keras.Model(x, scores, name=name)


# ------------------------------------------------------------------ 2-D toy data


def _relu_mlp(h, hidden_units, out_units, out_name):
    """Dense ReLU layers, then a linear output layer (shared by the toy generator and critic)."""
    for units in hidden_units:
        h = layers.Dense(units, activation="relu")(h)
    return layers.Dense(out_units, name=out_name)(h)


def toy_generator(latent_dim=2, hidden_units=(128, 128, 128), output_dim=2, name="toy_generator"):
    """A small ReLU MLP from noise (batch, latent_dim) to points (batch, output_dim).

    No BatchNorm and a linear output: toy points are not bounded like pixels.
    """
    _positive_int("latent_dim", latent_dim)
    _positive_int("output_dim", output_dim)
    hidden_units = _units("hidden_units", hidden_units)
    z = keras.Input(shape=(latent_dim,), name="noise")
    return keras.Model(z, _relu_mlp(z, hidden_units, output_dim, "point"), name=name)


def toy_critic(hidden_units=(128, 128, 128), input_dim=2, name="toy_critic"):
    """A small ReLU MLP from points (batch, input_dim) to one unbounded score.

    Serves as a GAN discriminator (the score is a logit) and as a WGAN critic.
    """
    _positive_int("input_dim", input_dim)
    hidden_units = _units("hidden_units", hidden_units)
    x = keras.Input(shape=(input_dim,), name="point")
    return keras.Model(x, _relu_mlp(x, hidden_units, 1, "score"), name=name)
