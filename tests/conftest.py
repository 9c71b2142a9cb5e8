"""Test settings: every test (and every notebook run by nbval) uses quick mode."""

import os

os.environ.setdefault("GAN_LESSONS_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import gan_lessons  # noqa: E402,F401  (quietens TensorFlow before anything imports it)
