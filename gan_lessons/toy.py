"""Measuring a generator on 2-D toy data: modes covered and high-quality samples.

On a mixture of Gaussians with known centres, mode collapse can be counted directly
instead of guessed from pictures. Following the usual benchmark (VEEGAN, PacGAN):

* a sample is *high quality* when it lies within 3 standard deviations of the
  nearest mode centre (a real sample does so 98.9 % of the time in 2-D);
* a mode is *covered* when enough samples are high-quality samples of that mode:
  at least ``min_share`` of the count it would get if every mode were equally
  likely (``min_share=0.2`` with 8 modes and 2,000 samples means 50 samples).
"""

import numpy as np


def mode_coverage(samples, centres, std, min_share=0.2):
    """Count the modes of a Gaussian mixture that ``samples`` cover.

    Args:
        samples: generated points, shape (n, d).
        centres: the mixture's mode centres, shape (modes, d).
        std: the standard deviation of each mode (``gaussian_ring``'s ``std``).
        min_share: a mode is covered when it gets at least this share of its fair
            count n / modes of high-quality samples.

    Returns:
        dict with ``modes_covered`` (int), ``modes`` (how many there are),
        ``high_quality`` (share of samples within 3 std of some centre) and
        ``counts`` (high-quality samples per mode, a list).
    """
    x = np.asarray(samples, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"samples must have shape (n, d) with n >= 1; got {x.shape}.")
    if c.ndim != 2 or c.shape[1] != x.shape[1]:
        raise ValueError(f"centres must have shape (modes, {x.shape[1]}) to match samples; got {c.shape}.")
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"std must be a positive number; got {std!r}.")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1]; got {min_share!r}.")
    finite = np.all(np.isfinite(x), axis=1)
    distances = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)
    distances[~finite] = np.inf
    nearest = distances.argmin(axis=1)
    good = distances[np.arange(len(x)), nearest] <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(c))
    needed = min_share * len(x) / len(c)
    return {
        "modes_covered": int(np.sum(counts >= needed)),
        "modes": int(len(c)),
        "high_quality": float(good.mean()),
        "counts": counts.tolist(),
    }
