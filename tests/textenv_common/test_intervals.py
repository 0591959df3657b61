import math

import pytest

from textenv_common.intervals import t_critical, wilson_interval, z_critical


@pytest.mark.parametrize(
    ("df", "confidence", "expected"),
    [(1, 0.95, 12.7062), (2, 0.95, 4.3027), (10, 0.95, 2.2281), (30, 0.95, 2.0423), (5, 0.99, 4.0321)],
)
def test_t_critical_matches_tables(df: int, confidence: float, expected: float) -> None:
    assert t_critical(df, confidence) == pytest.approx(expected, abs=1e-4)


def test_t_critical_tends_to_the_normal_one() -> None:
    assert t_critical(10**7) == pytest.approx(z_critical(0.95), abs=1e-5)


@pytest.mark.parametrize("df", [0, -1, 1.5, True, "3"])
def test_t_critical_refuses_bad_degrees_of_freedom(df: object) -> None:
    with pytest.raises(ValueError, match="df must be an integer"):
        t_critical(df)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_critical_values_refuse_bad_confidence(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence must be in"):
        t_critical(3, confidence)
    with pytest.raises(ValueError, match="confidence must be in"):
        wilson_interval(1, 2, confidence)


def test_wilson_interval_known_value_and_bounds() -> None:
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0
    low, high = wilson_interval(2.5, 5)  # a tie counts as half a success
    assert low < 0.5 < high


def test_wilson_interval_of_no_trials_is_missing() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize(("successes", "n"), [(-1, 5), (6, 5), (1, -1), (1, 2.5)])
def test_wilson_interval_refuses_impossible_counts(successes: float, n: int) -> None:
    with pytest.raises(ValueError, match=r"must be (an integer|between)"):
        wilson_interval(successes, n)
