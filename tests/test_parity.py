"""The code a lesson writes in front of the reader is the package's code.

A lesson that shows a trainer defines it in a notebook cell; lessons after it (and the
command line) import the package's copy. Here each such cell is executed on its own and
its class is compared with the package's: the same networks, weights and seed in, one
training step on the same batch, the same losses and the same weights out.
"""

import ast
import difflib
import inspect
import json
import re
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import gan_lessons
from gan_lessons import callbacks, cgan, checks, cyclegan, data, gan, losses, metrics, pix2pix, plots, wgan

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_class(notebook, name, **names):
    """Execute the code cell of ``notebook`` that defines ``class name`` and return the class
    (``names``: what else the cell needs, for example the lesson's base class)."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    found = [s for s in sources if re.search(rf"^(class|def) {name}\(", s, re.M)]
    assert len(found) == 1, f"{notebook} should define class {name} in one code cell"
    namespace = {"keras": keras, "tf": tf, "np": np, "layers": keras.layers, "gan_lessons": gan_lessons,
                 "callbacks": callbacks, "cgan": cgan, "checks": checks, "cyclegan": cyclegan, "data": data, "gan": gan,
                 "losses": losses, "metrics": metrics, "pix2pix": pix2pix, "plots": plots, "wgan": wgan, **names}
    exec(compile(found[0], f"{notebook}:{name}", "exec"), namespace)
    return namespace[name]


def _body(tree, name):
    """The statements of ``class name`` (or ``def name``) in ``tree``, docstrings removed, as text: what
    a reader compares, without comments, whitespace, docstrings and the base classes."""
    [node] = [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name]
    for part in ast.walk(node):
        if isinstance(part, (ast.ClassDef, ast.FunctionDef)) and part.body and isinstance(
                part.body[0], ast.Expr) and isinstance(part.body[0].value, ast.Constant) and isinstance(
                part.body[0].value.value, str):
            part.body = part.body[1:] or [ast.Pass()]
    return [ast.unparse(statement) for statement in node.body]


def same_source(notebook, name, package_class):
    """The notebook's ``class name`` (or function) has the package's text, statement by statement
    (comments, docstrings, whitespace and base classes aside)."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    [cell] = ["".join(c["source"]) for c in cells
              if c["cell_type"] == "code" and re.search(rf"^(class|def) {name}\(", "".join(c["source"]), re.M)]
    lesson = _body(ast.parse(cell), name)
    package = _body(ast.parse(textwrap.dedent(inspect.getsource(package_class))), package_class.__name__)
    assert lesson == package, "\n".join(difflib.unified_diff(package, lesson, "package", notebook, lineterm=""))


def same_step(make_trainer, lesson_class, package_class, batch):
    """One train_step of each class from identical starting points; compare logs and weights."""
    trainers = []
    for cls in (lesson_class, package_class):
        gan_lessons.set_seed(0)  # the same networks, initial weights and noise
        trainer = make_trainer(cls)
        logs = trainer.train_step(batch)
        trainers.append((trainer, {k: float(v) for k, v in logs.items()}))
    (lesson, lesson_logs), (package, package_logs) = trainers
    assert lesson_logs.keys() == package_logs.keys()
    assert all(np.isclose(lesson_logs[k], package_logs[k], rtol=1e-5, atol=1e-6) for k in lesson_logs)
    assert len(lesson.weights) == len(package.weights)
    for a, b in zip(lesson.weights, package.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=a.path)


def digits(shape):
    x, _ = data.load_mnist("train", source="bundled", limit=int(np.prod(shape)), verbose=False)
    return tf.constant(x.reshape(shape + (28, 28, 1)))


def test_lesson_01_trainer_is_the_package_gan():
    def make(cls):
        trainer = cls(gan.mlp_generator(8, (16,)), gan.mlp_discriminator((16,)), d_steps=2, real_label=0.9, seed=3)
        trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                        g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
        return trainer

    same_step(make, notebook_class("01_mlp_gan.ipynb", "GAN"), gan.GAN, digits((16,)))
    same_source("01_mlp_gan.ipynb", "GAN", gan.GAN)


def test_lesson_01_minimax_trainer_is_the_package_one():
    def make(cls):
        trainer = cls(gan.mlp_generator(8, (16,)), gan.mlp_discriminator((16,)), d_steps=2, seed=3)
        trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                        g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
        return trainer

    lesson_class = notebook_class("01_mlp_gan.ipynb", "MinimaxGAN", GAN=notebook_class("01_mlp_gan.ipynb", "GAN"))
    same_step(make, lesson_class, gan.MinimaxGAN, digits((16,)))
    same_source("01_mlp_gan.ipynb", "MinimaxGAN", gan.MinimaxGAN)
    # and it is the saturating loss: for a confidently rejected fake, the gradient nearly vanishes
    logits = tf.Variable([-6.0])
    with tf.GradientTape() as tape:
        loss = gan.MinimaxGAN(gan.mlp_generator(8, (16,)), gan.mlp_discriminator((16,))).generator_loss(logits)
    assert abs(float(tape.gradient(loss, logits)[0])) < 0.01


def same_network(build_lesson, build_package, inputs, **kwargs):
    """The lesson's builder and the package's, from the same seed: the same weights' shapes and
    the same outputs, in inference and in training mode."""
    nets = []
    for build in (build_lesson, build_package):
        gan_lessons.set_seed(0)
        nets.append(build(**kwargs))
    assert [w.shape for w in nets[0].weights] == [w.shape for w in nets[1].weights]
    for training in (False, True):
        np.testing.assert_allclose(np.asarray(nets[0](inputs, training=training)),
                                   np.asarray(nets[1](inputs, training=training)), rtol=1e-5, atol=1e-6)


def test_lesson_02_networks_and_weight_average_are_the_package_ones():
    lesson = notebook_functions("02_dcgan.ipynb", "dcgan_generator", "dcgan_discriminator")
    z = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    x = digits((4,))
    for build_lesson, build_package, inputs, kwargs in [
            (lesson["dcgan_generator"], gan.dcgan_generator, z, {"latent_dim": 8, "filters": 4}),
            (lesson["dcgan_discriminator"], gan.dcgan_discriminator, x, {"filters": 4, "refine": True}),
            (lesson["dcgan_discriminator"], gan.dcgan_discriminator, x, {"filters": 4})]:
        same_network(build_lesson, build_package, inputs, **kwargs)

    averages = []
    for average_class in (notebook_class("02_dcgan.ipynb", "GeneratorAverage"), callbacks.GeneratorAverage):
        gan_lessons.set_seed(0)
        trainer = gan.GAN(gan.dcgan_generator(8, 4), gan.dcgan_discriminator(4), seed=0)
        trainer.compile(d_optimizer=keras.optimizers.Adam(1e-2), g_optimizer=keras.optimizers.Adam(1e-2))
        start = [np.asarray(w) for w in trainer.generator.weights]
        average = average_class(0.5)
        average.set_model(trainer)
        for _ in range(3):
            trainer.train_step(x)
            average.on_train_batch_end(0)
        averages.append([np.asarray(w) for w in trainer.generator_average.weights])
        # the average moved away from the starting weights, and it is not the raw generator
        assert not all(np.allclose(a, s) for a, s in zip(averages[-1], start))
        assert not all(np.allclose(a, np.asarray(w)) for a, w in zip(averages[-1], trainer.generator.weights))
    for a, b in zip(*averages):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lesson_02_slerp_is_the_package_one_which_lesson_03_imports():
    same_source("02_dcgan.ipynb", "slerp", gan.slerp)
    z_a, z_b = np.random.default_rng(0).standard_normal((2, 64))
    np.testing.assert_allclose(gan.slerp(z_a, z_b, 0.0), z_a, atol=1e-12)
    np.testing.assert_allclose(gan.slerp(z_a, z_b, 1.0), z_b, atol=1e-12)
    middle = gan.slerp(z_a, z_b, 0.5)  # on the arc: between the two lengths, at equal angles from both
    assert min(np.linalg.norm(z_a), np.linalg.norm(z_b)) <= np.linalg.norm(middle) <= max(np.linalg.norm(z_a),
                                                                                           np.linalg.norm(z_b))
    cells = ["".join(c["source"]) for c in json.loads((NOTEBOOKS / "03_conditional_gan.ipynb").read_text())["cells"]]
    assert any("gan.slerp(" in cell for cell in cells) and not any("def slerp(" in cell for cell in cells)


def test_lesson_03_networks_and_trainer_are_the_package_cgan():
    lesson = notebook_definitions("03_conditional_gan.ipynb", {
        "np": np, "keras": keras, "tf": tf, "layers": keras.layers, "gan": gan, "cgan": cgan, "losses": losses,
        "metrics": metrics, "checks": checks})
    z = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    y = np.array([0, 3, 7, 9])
    x = digits((4,)).numpy()
    for build_lesson, build_package, inputs, kwargs in [
            (lesson["conditional_generator"], cgan.conditional_generator, [z, y], {"latent_dim": 8, "filters": 4}),
            (lesson["conditional_discriminator"], cgan.conditional_discriminator, [x, y], {"filters": 4})]:
        same_network(build_lesson, build_package, inputs, **kwargs)

    for matching_aware in (False, True):
        def make(cls):
            trainer = cls(cgan.conditional_generator(8, filters=4), cgan.conditional_discriminator(filters=4),
                          matching_aware=matching_aware, real_label=0.9, seed=3)
            trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                            g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
            return trainer

        same_step(make, lesson["ConditionalGAN"], cgan.ConditionalGAN, (tf.constant(x), tf.constant(y)))
    same_source("03_conditional_gan.ipynb", "ConditionalGAN", cgan.ConditionalGAN)


@pytest.mark.parametrize("constraint", [{"gp_weight": 10.0}, {"clip_value": 0.01}])
def test_lesson_04_trainer_is_the_package_wgan(constraint):
    def make(cls):
        trainer = cls(gan.dcgan_generator(8, filters=4), wgan.critic(4), n_critic=3, seed=3, **constraint)
        trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3, 0.5, 0.9),
                        g_optimizer=keras.optimizers.Adam(1e-3, 0.5, 0.9))
        return trainer

    same_step(make, notebook_class("04_wgan.ipynb", "WGAN"), wgan.WGAN, digits((3, 8)))
    same_source("04_wgan.ipynb", "WGAN", wgan.WGAN)


def test_lesson_05_train_step_is_the_package_cyclegan():
    def make(cls):
        networks = [cyclegan.resnet_generator(4, 1), cyclegan.resnet_generator(4, 1),
                    cyclegan.patchgan_discriminator(4), cyclegan.patchgan_discriminator(4)]
        trainer = cls(*networks, pool_size=4, seed=3)
        trainer.compile(d_optimizer=keras.optimizers.Adam(cyclegan.LinearDecay(2e-4, 10), beta_1=0.5),
                        g_optimizer=keras.optimizers.Adam(cyclegan.LinearDecay(2e-4, 10), beta_1=0.5))
        return trainer

    batch = digits((2, 6))
    same_step(make, notebook_class("05_cyclegan.ipynb", "CycleGAN"), cyclegan.CycleGAN,
              (batch[0], -batch[1]))
    # The lesson writes train_step alone; its class takes the rest (compile included) from the
    # package's. That one method has the package's text.
    cells = json.loads((NOTEBOOKS / "05_cyclegan.ipynb").read_text())["cells"]
    [cell] = ["".join(c["source"]) for c in cells
              if c["cell_type"] == "code" and re.search(r"^class CycleGAN\(", "".join(c["source"]), re.M)]
    [lesson] = _body(ast.parse(cell), "CycleGAN")
    [package] = [statement for statement in _body(ast.parse(textwrap.dedent(inspect.getsource(cyclegan.CycleGAN))),
                                                  "CycleGAN") if statement.startswith("def train_step(")]
    assert lesson == package, "\n".join(difflib.unified_diff(package.splitlines(), lesson.splitlines(), "package",
                                                             "05_cyclegan.ipynb", lineterm=""))


def notebook_functions(notebook, *names):
    """Execute, in order and in one namespace, the code cells of ``notebook`` that only define
    functions, one of them in ``names``; return that namespace."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    namespace = {"np": np, "keras": keras, "tf": tf, "layers": keras.layers, "losses": losses}
    for source in ("".join(c["source"]) for c in cells if c["cell_type"] == "code"):
        body = ast.parse(source).body
        if all(isinstance(node, ast.FunctionDef) for node in body) and {node.name for node in body} & set(names):
            exec(compile(source, notebook, "exec"), namespace)
    missing = set(names) - set(namespace)
    assert not missing, f"{notebook} defines no function {', '.join(sorted(missing))}"
    return namespace


def test_lesson_07_metrics_are_the_package_metrics():
    lesson = notebook_functions("07_evaluating_gans.ipynb", "inception_score", "fid", "fid_infinity", "kid",
                                "precision_recall", "density_coverage", "copying")
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 16)), rng.standard_normal((200, 16)) * 1.3 + 0.2
    logits = rng.standard_normal((200, 10)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[:5, 0] = 0.0  # zero probabilities: 0 log 0 = 0 in both
    probs /= probs.sum(axis=1, keepdims=True)
    assert lesson["inception_score"](probs) == pytest.approx(metrics.inception_score(probs), rel=1e-12)
    assert lesson["fid"](real, fake) == pytest.approx(metrics.fid(real, fake), rel=1e-10)
    sizes = [40, 80, 120, 160, 200]
    mine, theirs = lesson["fid_infinity"](real, fake, sizes, seed=3), metrics.fid_infinity(real, fake, sizes, seed=3)
    assert mine["fid_infinity"] == pytest.approx(theirs["fid_infinity"], rel=1e-10)
    assert lesson["kid"](real, fake, subset_size=100, seed=2) == pytest.approx(
        metrics.kid(real, fake, subset_size=100, seed=2), rel=1e-10)
    assert lesson["precision_recall"](real, fake, 3) == metrics.precision_recall(real, fake, 3)
    assert lesson["density_coverage"](real, fake, 5) == pytest.approx(metrics.density_coverage(real, fake, 5))
    train, held_out = rng.standard_normal((400, 16)), rng.standard_normal((100, 16))
    assert lesson["copying"](train, fake, held_out) == pytest.approx(metrics.copying(train, fake, held_out))


def test_lesson_06_pairs_networks_and_trainer_are_the_package_pix2pix():
    from gan_lessons import digit_tasks

    lesson = notebook_functions("06_pix2pix.ipynb", "sketch", "unet_generator", "conditional_patchgan")
    lesson.update(checks=checks, IMAGE_SHAPE=gan.IMAGE_SHAPE)  # what the lesson imports for its networks
    x = digits((8,)).numpy()
    np.testing.assert_array_equal(lesson["sketch"](x), digit_tasks.sketch(x))
    np.testing.assert_array_equal(lesson["hide_lower_half"](x), digit_tasks.hide_lower_half(x))
    for skips in (True, False):
        nets = []
        for build in (lesson["unet_generator"], pix2pix.unet_generator):
            gan_lessons.set_seed(0)
            nets.append(build(8, skips=skips))
        np.testing.assert_allclose(np.asarray(nets[0](x)), np.asarray(nets[1](x)), rtol=1e-6, atol=1e-6)
    nets = []
    for build in (lesson["conditional_patchgan"], pix2pix.conditional_patchgan):
        gan_lessons.set_seed(0)
        nets.append(build(8))
    np.testing.assert_allclose(np.asarray(nets[0]([x, x])), np.asarray(nets[1]([x, x])), rtol=1e-6, atol=1e-6)

    # The networks' text is the package's too (docstrings, comments and whitespace aside).
    cells = ["".join(c["source"]) for c in json.loads((NOTEBOOKS / "06_pix2pix.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    for function in (pix2pix.unet_generator, pix2pix.conditional_patchgan):
        texts = []
        for source in ([c for c in cells if re.search(rf"^def {function.__name__}\(", c, re.M)][0],
                       inspect.getsource(function)):
            [node] = [n for n in ast.parse(source).body if getattr(n, "name", None) == function.__name__]
            node.body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            texts.append(ast.unparse(node).splitlines())
        assert texts[0] == texts[1], "\n".join(difflib.unified_diff(texts[1], texts[0], "package", "lesson",
                                                                   lineterm=""))

    lesson_class = notebook_class("06_pix2pix.ipynb", "Pix2Pix")
    batch = (tf.constant(digit_tasks.sketch(x)), tf.constant(x))
    for weights in ({"l1_weight": 100.0, "gan_weight": 1.0}, {"l1_weight": 100.0, "gan_weight": 0.0}):
        def make(cls):
            trainer = cls(pix2pix.unet_generator(8), pix2pix.conditional_patchgan(8), **weights)
            trainer.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                            g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
            return trainer

        same_step(make, lesson_class, pix2pix.Pix2Pix, batch)
    same_source("06_pix2pix.ipynb", "Pix2Pix", pix2pix.Pix2Pix)
    assert lesson_class.compile is pix2pix.Pix2Pix.compile is gan.GAN.compile  # lesson 01's, inherited


def notebook_definitions(notebook, namespace):
    """Execute, in order, the code cells of ``notebook`` that only define classes and functions."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    for source in ("".join(c["source"]) for c in cells if c["cell_type"] == "code"):
        body = ast.parse(source).body
        if body and all(isinstance(node, (ast.FunctionDef, ast.ClassDef)) for node in body):
            exec(compile(source, notebook, "exec"), namespace)
    return namespace


def test_lesson_08_networks_and_trainer_are_the_package_stylegan():
    from gan_lessons import checks, stylegan

    notebook = "08_stylegan.ipynb"
    sources = ["".join(c["source"]) for c in json.loads((NOTEBOOKS / notebook).read_text())["cells"]
               if c["cell_type"] == "code"]

    def same_text(name, package_object):  # of a function: its statements, docstrings aside, as same_source
        texts = []
        for source in (*sources, inspect.getsource(package_object)):
            for node in ast.parse(source).body:
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    in_a_class = "class _:\n" + textwrap.indent(ast.get_source_segment(source, node), "    ")
                    texts.append(_body(ast.parse(in_a_class), "_"))
        assert len(texts) == 2, f"{notebook} should define {name} in one code cell"
        assert texts[0] == texts[1], "\n".join(difflib.unified_diff(texts[1], texts[0], "package", notebook,
                                                                    lineterm=""))

    for name in ("PixelNorm", "ModulatedConv2D", "NoiseInjection", "ConstantInput", "Truncation", "MinibatchStd",
                 "StyleGAN"):
        same_source(notebook, name, getattr(stylegan, name))
    for name in ("mapping_network", "synthesis_network", "style_generator", "discriminator", "parts",
                 "relative_change"):
        same_text(name, getattr(stylegan, name))

    # The lesson's cells of definitions and imports, run in order: its style mixing and helpers
    # are the package's, and they work on the lesson's networks.
    lesson = {"np": np, "keras": keras, "tf": tf, "layers": keras.layers, "losses": losses, "checks": checks,
              "gan": gan, "metrics": metrics, "IMAGE_SHAPE": gan.IMAGE_SHAPE, "NUM_STYLES": stylegan.NUM_STYLES,
              "STYLE_INIT": stylegan.STYLE_INIT}
    for source in sources:
        body = ast.parse(source).body
        if body and all(isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.ImportFrom)) for node in body):
            exec(compile(source, notebook, "exec"), lesson)
    for name in ("mix", "styles_of", "draw", "set_noise", "set_psi"):
        assert lesson[name] is getattr(stylegan, name), name
    z = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    images = np.random.default_rng(1).uniform(-1, 1, (4, 28, 28, 1)).astype("float32")
    built = []
    for module in (lesson, vars(stylegan)):
        gan_lessons.set_seed(0)
        g = module["style_generator"](module["mapping_network"](16, 8, 2), module["synthesis_network"](8, (8, 8, 4)))
        d = module["discriminator"](8)
        for layer in g.get_layer("synthesis").layers:  # noise on, at a visible strength
            if hasattr(layer, "strength"):
                layer.strength.assign(np.full(layer.strength.shape, 0.5, "float32"))
        built.append((g, d, np.asarray(g(z)), np.asarray(d(images))))
    (g_lesson, d_lesson, x_lesson, logit_lesson), (g_package, d_package, x_package, logit_package) = built
    assert [w.shape for w in g_lesson.weights] == [w.shape for w in g_package.weights]
    np.testing.assert_allclose(x_lesson, x_package, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logit_lesson, logit_package, rtol=1e-5, atol=1e-6)
    lesson["set_noise"](g_lesson, False)
    w = lesson["styles_of"](g_lesson, z)
    first_layers_from_w = lesson["draw"](g_lesson, lesson["mix"](w, w[::-1], 3))
    assert first_layers_from_w.shape == (4, 28, 28, 1)
    np.testing.assert_allclose(lesson["draw"](g_lesson, w), metrics.generate(g_lesson, z), atol=1e-5)
    lesson["set_noise"](g_lesson, True)

    def make(cls):
        module = lesson if cls is lesson["StyleGAN"] else vars(stylegan)
        g = module["style_generator"](module["mapping_network"](16, 8, 2), module["synthesis_network"](8, (8, 8, 4)))
        trainer = cls(g, module["discriminator"](8), r1_weight=10.0, seed=0)
        trainer.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3),
                        mapping_optimizer=keras.optimizers.Adam(1e-5))
        return trainer

    same_step(make, lesson["StyleGAN"], stylegan.StyleGAN, digits((16,)))


def test_lesson_09_networks_trainer_and_samplers_are_the_package_diffusion():
    import math

    from gan_lessons import checks, diffusion

    notebook = "09_diffusion.ipynb"
    sources = ["".join(c["source"]) for c in json.loads((NOTEBOOKS / notebook).read_text())["cells"]
               if c["cell_type"] == "code"]

    def same_text(name, package_object):  # of a function or class: its statements, docstrings aside
        texts = []
        for source in (*sources, inspect.getsource(package_object)):
            for node in ast.parse(source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                    in_a_class = "class _:\n" + textwrap.indent(ast.get_source_segment(source, node), "    ")
                    texts.append(_body(ast.parse(in_a_class), "_"))
        assert len(texts) == 2, f"{notebook} should define {name} in one code cell"
        assert texts[0] == texts[1], "\n".join(difflib.unified_diff(texts[1], texts[0], "package", notebook,
                                                                    lineterm=""))

    for name in ("SinusoidalEmbedding", "Diffusion"):
        same_source(notebook, name, getattr(diffusion, name))
    for name in ("Schedule", "training_target", "split", "toy_denoiser", "guided_prediction", "initial_noise",
                 "ddpm_sample", "res_block", "unet", "ddim_sample", "autoencoder", "train_autoencoder", "encode",
                 "decode"):
        same_text(name, getattr(diffusion, name))

    imported = {alias.name for source in sources for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom) and node.module == "gan_lessons.diffusion" for alias in node.names}
    lesson = notebook_definitions(notebook, {
        "np": np, "keras": keras, "tf": tf, "layers": keras.layers, "math": math, "checks": checks,
        "IMAGE_SHAPE": gan.IMAGE_SHAPE, **{name: getattr(diffusion, name) for name in imported}})
    package = vars(diffusion)
    rng = np.random.default_rng(0)
    for name in ("linear", "cosine"):
        np.testing.assert_array_equal(getattr(lesson["Schedule"], name)(50).alpha_bars,
                                      getattr(diffusion.Schedule, name)(50).alpha_bars)
    x0, eps = rng.standard_normal((2, 3, 4))
    for target in diffusion.TARGETS:
        for module in (lesson, package):
            np.testing.assert_allclose(module["split"](module["training_target"](x0, eps, 0.6, 0.8, target),
                                                       0.6 * x0 + 0.8 * eps, 0.6, 0.8, target), (x0, eps), atol=1e-12)

    outputs = []
    for module in (lesson, package):
        rng = np.random.default_rng(10)  # the same draws for both
        gan_lessons.set_seed(0)
        toy = module["toy_denoiser"]((16, 16), 8)
        pixel = module["unet"](gan.IMAGE_SHAPE, (8, 8, 8), num_classes=10, emb_dim=16)
        latent = module["unet"]((7, 7, 4), (8, 16), num_classes=10, emb_dim=16)
        encoder, decoder = module["autoencoder"](4, (8, 8))
        for net in (pixel, latent):  # the zero-initialised last layer would hide everything else
            last = net.get_layer("prediction")
            last.kernel.assign(rng.standard_normal(last.kernel.shape).astype("float32") * 0.1)
        schedule = module["Schedule"].cosine(100)
        gan_lessons.set_seed(1)
        trainer = module["Diffusion"](latent, schedule, target="v", label_dropout=0.5, seed=3)
        trainer.compile(keras.optimizers.Adam(1e-3))
        z = np.random.default_rng(2).standard_normal((16, 7, 7, 4)).astype("float32")
        trainer.train_step((tf.constant(z), tf.constant(np.arange(16) % 10)))  # one step, eagerly (conftest.py)
        images = np.random.default_rng(4).uniform(-1, 1, (3, 28, 28, 1)).astype("float32")
        toy_schedule = module["Schedule"].linear(30)
        outputs.append([
            toy.predict_on_batch([rng.standard_normal((5, 2)).astype("float32"), np.arange(5, dtype="float32")]),
            module["ddim_sample"](pixel, schedule, 4, np.array([1, 2, 3, 4]), 3, "v", 2.0, seed=5, clip=1.0)[0],
            module["ddim_sample"](latent, schedule, 4, None, 2, "v", 1.5, seed=6)[0],
            module["ddpm_sample"](toy, toy_schedule, 6, target="epsilon", seed=7),
            module["decode"](decoder, module["encode"](encoder, images)),
            np.concatenate([w.ravel() for w in latent.get_weights()]),
        ])
    for got, expected in zip(*outputs):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_lesson_05_networks_pool_decay_and_report_are_the_package_ones():
    notebook = "05_cyclegan.ipynb"
    for name, package_object in (("instance_norm", cyclegan.instance_norm),
                                 ("resnet_generator", cyclegan.resnet_generator),
                                 ("patchgan_discriminator", cyclegan.patchgan_discriminator),
                                 ("ImagePool", cyclegan.ImagePool), ("LinearDecay", cyclegan.LinearDecay),
                                 ("translation_report", cyclegan.translation_report)):
        same_source(notebook, name, package_object)
    from gan_lessons.digit_tasks import UnpairedDomains, split_unpaired, style

    lesson = notebook_definitions(notebook, {
        "np": np, "keras": keras, "tf": tf, "layers": keras.layers, "checks": checks, "cyclegan": cyclegan,
        "losses": losses, "IMAGE_SHAPE": gan.IMAGE_SHAPE, "UnpairedDomains": UnpairedDomains, "style": style})
    x = digits((4,)).numpy()
    same_network(lesson["resnet_generator"], cyclegan.resnet_generator, x, filters=4, residual_blocks=2)
    same_network(lesson["patchgan_discriminator"], cyclegan.patchgan_discriminator, x, filters=4)

    # The pools, from the same seed and fed the same batches, send the same images and keep the same store.
    pools = [cls(size=3, seed=5, image_shape=(1, 1, 1)) for cls in (lesson["ImagePool"], cyclegan.ImagePool)]
    for step in range(4):
        batch = np.full((2, 1, 1, 1), step, "float32") + np.arange(2, dtype="float32")[:, None, None, None] / 10
        np.testing.assert_array_equal(*[np.asarray(pool(batch)) for pool in pools])
    np.testing.assert_array_equal(*[np.asarray(pool.images) for pool in pools])

    steps = np.arange(0, 13)
    np.testing.assert_allclose(*[[float(cls(2e-4, 12, 0.5)(s)) for s in steps]
                                 for cls in (lesson["LinearDecay"], cyclegan.LinearDecay)])

    images, labels = data.load_mnist("train", source="bundled", limit=40, verbose=False)
    domains = split_unpaired(images, labels)
    blur = keras.layers.AveragePooling2D(3, strides=1, padding="same")  # a translator that changes the images
    reports = [report(blur, lambda t, training=False: -t, domains, classify=lambda i: (i.mean(axis=(1, 2, 3)) > -0.8
                                                                                        ).astype(int))
               for report in (lesson["translation_report"], cyclegan.translation_report)]
    assert reports[0] == reports[1]
