"""The wheel carries the bundled digits and the classifier's weights as package data: installed into a fresh
folder (not a clone), gan_lessons finds them through importlib.resources."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[1]
CHECK = """
import sys
import gan_lessons
from gan_lessons import classifier, data
assert gan_lessons.__file__.startswith(sys.argv[1]), gan_lessons.__file__
x, y = data.load_mnist("test", verbose=False)
weights = classifier.weights_path()
assert x.shape == (1000, 28, 28, 1) and len(set(y.tolist())) == 10
assert weights.is_file() and str(weights).startswith(sys.argv[1]), weights
print("found", data.bundled_path(), weights)
"""


def test_an_installed_wheel_finds_the_bundled_data(tmp_path):
    # Built from a copy, so that the build leaves nothing in the clone.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "gan_lessons", source / "gan_lessons", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    # A setuptools older than the build needs (pyproject.toml's build-system) is replaced in an isolated build.
    isolated = int(setuptools.__version__.split(".")[0]) < 77
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "-w", str(tmp_path / "wheel"), str(source)]
                   + ([] if isolated else ["--no-build-isolation"]), check=True, timeout=300)
    wheel, = (tmp_path / "wheel").glob("gan_lessons-*.whl")
    fresh = tmp_path / "fresh"
    subprocess.run(pip + ["install", "--no-deps", "--target", str(fresh), str(wheel)], check=True, timeout=120)
    assert (fresh / "gan_lessons" / "bundled" / "README.md").is_file()  # the provenance travels with the data
    env = {k: v for k, v in os.environ.items() if k != "GAN_LESSONS_DATA_DIR"}
    done = subprocess.run([sys.executable, "-c", CHECK, str(fresh)], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(fresh)}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"found {fresh}")
