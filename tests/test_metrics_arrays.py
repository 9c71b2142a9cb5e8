"""The metrics of lesson 07 on plain arrays, against values computed by hand on tiny
inputs (worked out in the comments), and the paradox of two identical Gaussian sets."""

import math

import numpy as np
import pytest

from gan_lessons import checks, metrics


def column(*values):
    return np.array(values, dtype=np.float64)[:, None]


def test_inception_score_by_hand():
    # Two images each read with certainty, one per class: p(y) = (1/2, 1/2), KL = log 2 each.
    assert metrics.inception_score([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(2.0)
    # Every image gets the same distribution: KL = 0, IS = 1.
    assert metrics.inception_score([[0.2, 0.8]] * 3) == pytest.approx(1.0)
    # Mixed: p(y) = (0.75, 0.25); KL of row 1 = 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25), of row 2 = log(1/0.75).
    expected = math.exp((0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25) + math.log(1 / 0.75)) / 2)
    assert metrics.inception_score([[0.5, 0.5], [1.0, 0.0]]) == pytest.approx(expected, rel=1e-12)
    # Ten equally frequent classes read with certainty: the maximum, 10.
    assert metrics.inception_score(np.eye(10)) == pytest.approx(10.0)


def test_fid_of_one_dimensional_sets_by_hand():
    # 1-D: FID = (m_a - m_b)^2 + (s_a - s_b)^2 with sample standard deviations (ddof 1).
    a, b = column(0, 2), column(1, 5)  # means 1 and 3, variances 2 and 8
    assert metrics.fid(a, b) == pytest.approx((1 - 3) ** 2 + (math.sqrt(2) - math.sqrt(8)) ** 2)


def test_kid_of_tiny_sets_by_hand():
    # d = 1, k(x, y) = (x y + 1)^3. a = {0, 1}: k(0, 1) = 1; b = {0, 2}: k(0, 2) = 1;
    # across: k(0,0) = 1, k(0,2) = 1, k(1,0) = 1, k(1,2) = 27 -> mean 7.5.
    # MMD^2 = 1 + 1 - 2 * 7.5 = -13.
    assert metrics.kid(column(0, 1), column(0, 2), subsets=3) == (pytest.approx(-13.0), pytest.approx(0.0))


def test_precision_recall_density_coverage_by_hand():
    # real = {0, 1, 2, 3, 6}, k = 1: real radii 1, 1, 1, 1, 3 (6's nearest real is 3).
    # fake = {0.3, 0.5, 2.1, 10, 10.6}: fake radii 0.2, 0.2, 1.6, 0.6, 0.6.
    real, fake = column(0, 1, 2, 3, 6), column(0.3, 0.5, 2.1, 10, 10.6)
    # precision: 0.3, 0.5 and 2.1 lie in a real ball; 10 is 4 from 6 (> 3): 3 of 5.
    # recall: real 1, 2, 3 lie in 2.1's ball (radius 1.6); 0 and 6 in none: 3 of 5.
    assert metrics.precision_recall(real, fake, k=1) == (pytest.approx(0.6), pytest.approx(0.6))
    # density: 0.3 and 0.5 lie in the balls of 0 and 1, 2.1 in those of 2 and 3: 6 / (k * 5) = 1.2.
    # coverage: the balls of 0, 1, 2, 3 hold a fake, that of 6 ([3, 9]) none: 4 of 5.
    assert metrics.density_coverage(real, fake, k=1) == (pytest.approx(1.2), pytest.approx(0.8))


def test_copying_by_hand():
    # Held-out samples 3 and 6 are 3 and 4 from the training set {0, 10}: median 3.5.
    # Fakes 0.1, 9.5 and 5 are 0.1, 0.5 and 5 away: median 0.5, ratio 0.5 / 3.5.
    # The 1 % quantile of the held-out distances is 3.01: two fakes of three are nearer.
    result = metrics.copying(column(0, 10), column(0.1, 9.5, 5), column(3, 6))
    assert result["ratio"] == pytest.approx(0.5 / 3.5)
    assert result["near_copies"] == pytest.approx(2 / 3)
    assert result["held_out_median"] == pytest.approx(3.5)


def test_identical_gaussians_precision_recall_fall_short_density_coverage_do_not():
    # Two samples of the same 64-D Gaussian: a perfect "generator". Improved precision and
    # recall stay well below 1 (k-NN balls of 1,000 points in 64-D miss much of the support),
    # density is near 1 and coverage near 1 - 2^-k.
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((1000, 64)), rng.standard_normal((1000, 64))
    precision, recall = metrics.precision_recall(real, fake, k=3)
    density, coverage = metrics.density_coverage(real, fake, k=5)
    assert precision < 0.8 and recall < 0.8
    assert 0.85 < density < 1.15 and coverage > 0.9


def test_fid_infinity_removes_most_of_the_small_sample_bias():
    # Fakes from the same 8-D Gaussian as 20,000 reals: the true FID is 0, FID at N fakes
    # is biased upwards by about c / N. Subsets of one pool of fakes leave the pool's own
    # error, so the extrapolation is checked on average over five pools.
    at_infinity, at_pool = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        result = metrics.fid_infinity(rng.standard_normal((20000, 8)), rng.standard_normal((2000, 8)), seed=seed)
        assert result["sizes"][0] == 400 and result["sizes"][-1] == 2000 and len(result["sizes"]) == 10
        assert result["fids"][0] > result["fids"][-1] and result["slope"] > 0
        at_infinity.append(result["fid_infinity"])
        at_pool.append(result["fids"][-1])
    assert abs(np.mean(at_infinity)) < 0.6 * np.mean(at_pool)


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.fid(np.zeros((5, 3)), np.zeros((5, 4))), "features_a has 3 features per sample but features_b has 4"),
    (lambda: metrics.precision_recall(np.zeros((3, 2)), np.ones((9, 2)), k=3), "real must hold at least 4 samples"),
    (lambda: metrics.density_coverage(np.ones((9, 2)), np.zeros((5, 2)), k=5), "fake must hold at least 6 samples"),
    (lambda: metrics.kid(column(0, np.nan), column(0, 1)), "features_a holds 1 NaN or infinite"),
    (lambda: metrics.fid(column(0, 1), column(0, np.inf)), "features_b holds 1 NaN or infinite"),
    (lambda: metrics.inception_score([[0.5, 0.6]]), "probs must hold probabilities"),
    (lambda: metrics.inception_score([[1.5, -0.5]]), "probs must hold probabilities"),
    (lambda: metrics.fid(np.zeros(5), np.zeros(5)), "features_a must be a 2-D array"),
    (lambda: metrics.fid_infinity(column(0, 1, 2), column(0, 1, 2), sizes=[3, 3]), "sizes must hold at least 2"),
    (lambda: metrics.copying(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2))), "but held_out has 2"),
    (lambda: metrics.fid([["a", "b"]], np.zeros((5, 2))), r"features_a must be an array of numbers; got \[\['a'"),
    (lambda: metrics.kid(np.zeros((5, 2)), np.ones((5, 2)), seed=-1), "seed must be an integer from 0 .* got -1"),
    (lambda: metrics.kid(np.zeros((5, 2)), np.ones((5, 2)), subset_size=1), "subset_size must be an integer >= 2"),
    (lambda: metrics.fid_infinity(column(0, 1, 2), column(0, 1, 2), seed="0"), "seed must be an integer .* got '0'"),
    (lambda: metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2)),
     r"mu_a, cov_a, mu_b and cov_b must have shapes .* got \(2,\), \(2, 2\), \(3,\) and \(2, 2\)"),
    (lambda: metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3)), "cov_a has 2 features per "),
    (lambda: metrics.frechet_distance(np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), np.eye(2)),
     "cov_a holds 4 NaN"),
    (lambda: metrics.class_coverage(np.zeros((4, 28, 28)), min_share=1.5), r"min_share must be a number in \(0, 1\]"),
    (lambda: metrics.mode_coverage(np.zeros((4, 2)), np.zeros((3, 3)), std=0.1), "centres"),
    (lambda: metrics.mode_coverage(np.zeros((4, 2)), np.zeros((3, 2)), std=0), "std must be a number in"),
    (lambda: metrics.generator_inputs("generator", 10), "generator must be a Keras model; got str 'generator'"),
    (lambda: metrics.generate(lambda x: x, np.zeros((4, 2))), "generator must be a Keras model; got function"),
])
def test_bad_input_is_one_sentence_naming_the_argument(call, message):
    with pytest.raises(checks.BadArgument, match=message) as info:
        call()
    assert "\n" not in str(info.value) and str(info.value).endswith(".")
