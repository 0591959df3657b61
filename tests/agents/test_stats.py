"""Student's t intervals against published critical values, and curves on a common grid."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from agents.stats import interpolate_curves, mean_ci, t_critical

# Two-sided critical values from the standard t table (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
T_TABLE = [
    (0.95, 1, 12.706),
    (0.95, 2, 4.303),
    (0.95, 3, 3.182),
    (0.95, 4, 2.776),
    (0.95, 5, 2.571),
    (0.95, 6, 2.447),
    (0.95, 7, 2.365),
    (0.95, 8, 2.306),
    (0.95, 9, 2.262),
    (0.95, 10, 2.228),
    (0.95, 15, 2.131),
    (0.95, 20, 2.086),
    (0.95, 25, 2.060),
    (0.95, 30, 2.042),
    (0.95, 40, 2.021),
    (0.95, 60, 2.000),
    (0.95, 100, 1.984),
    (0.95, 120, 1.980),
    (0.90, 1, 6.314),
    (0.90, 10, 1.812),
    (0.99, 1, 63.657),
    (0.99, 2, 9.925),
    (0.99, 10, 3.169),
    (0.99, 30, 2.750),
]


@pytest.mark.parametrize(("confidence", "df", "expected"), T_TABLE)
def test_t_critical_matches_the_table(confidence: float, df: int, expected: float) -> None:
    assert t_critical(df, confidence) == pytest.approx(expected, abs=6e-4)


def test_t_critical_tends_to_the_normal_quantile_and_is_continuous_where_the_method_switches() -> None:
    assert t_critical(10**7) == pytest.approx(1.959964, abs=1e-5)
    # Series (df ≤ 1000) and Cornish–Fisher expansion (df > 1000) agree across the switch.
    assert t_critical(1000) - t_critical(1001) == pytest.approx(0.0, abs=1e-5)
    assert t_critical(1000) > t_critical(1001) > t_critical(2000) > 1.96
    values = [t_critical(df) for df in range(1, 60)]
    assert all(a > b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("df", [0, -1, 2.5, True, "3"])
def test_t_critical_rejects_bad_degrees_of_freedom(df: object) -> None:
    with pytest.raises(ValueError, match="df must be an integer"):
        t_critical(df)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95, -0.5])
def test_bad_confidence_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence must be in"):
        t_critical(3, confidence)
    with pytest.raises(ValueError, match="confidence must be in"):
        mean_ci([1.0, 2.0], confidence)


def test_mean_ci_by_hand() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0])  # s = 1, n = 3, t(2) = 4.3027
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    mean, half = mean_ci([5.0, 7.0])  # s = √2, n = 2: s/√n = 1, t(1) = 12.7062
    assert (mean, half) == pytest.approx((6.0, 12.706205), rel=1e-6)
    assert mean_ci(np.full(4, 0.5)) == (0.5, 0.0)


def test_mean_ci_one_value_has_no_interval_and_none_is_an_error() -> None:
    mean, half = mean_ci([0.25])
    assert mean == 0.25
    assert math.isnan(half)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])


def test_mean_ci_covers_the_true_mean_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    trials = 4000
    hits = 0
    for sample in rng.normal(loc=3.0, scale=2.0, size=(trials, 3)):
        mean, half = mean_ci(sample)
        hits += abs(mean - 3.0) <= half
    assert hits / trials == pytest.approx(0.95, abs=0.015)  # 3.5 standard errors of a binomial proportion


def test_interpolate_curves_on_a_common_grid() -> None:
    a = [{"x": 0.0, "y": 0.0}, {"x": 10.0, "y": 1.0}, {"x": 20.0, "y": 3.0}]
    b = [{"x": 20.0, "y": 0.0}, {"x": 5.0, "y": 2.0}]  # out of order, and a shorter range
    grid = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    out = interpolate_curves([a, b], "x", "y", grid)
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out[0], [0.0, 0.5, 1.0, 2.0, 3.0, np.nan])
    np.testing.assert_allclose(out[1], [np.nan, 2.0, 4 / 3, 2 / 3, 0.0, np.nan])


def test_interpolate_curves_skips_rows_without_the_value() -> None:
    # A rollout in which no episode ended logs no reward: its row is skipped, not read as zero.
    history = [{"x": 0.0, "y": 1.0}, {"x": 10.0}, {"x": 20.0, "y": float("nan")}, {"x": 30.0, "y": 4.0}]
    out = interpolate_curves([history, [], [{"x": 1.0}]], "x", "y", [0.0, 10.0, 30.0])
    np.testing.assert_allclose(out[0], [1.0, 2.0, 4.0])
    assert np.isnan(out[1:]).all()


def test_interpolate_curves_rejects_a_two_dimensional_grid() -> None:
    with pytest.raises(ValueError, match="one-dimensional"):
        interpolate_curves([[{"x": 0.0, "y": 0.0}]], "x", "y", np.zeros((2, 2)))
