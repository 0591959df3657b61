"""The KL coefficient controllers."""

from __future__ import annotations

import pytest

from textenv.errors import ConfigError
from textenv.kl import AdaptiveKLController, FixedKLController, make_kl_controller


def test_fixed_controller_never_moves():
    c = make_kl_controller(0.1)
    assert isinstance(c, FixedKLController)
    c.update(100.0, 64)
    assert c.value == 0.1


def test_adaptive_controller_follows_ziegler_et_al():
    c = make_kl_controller(0.2, target_kl=6.0, horizon=100)
    assert isinstance(c, AdaptiveKLController)
    c.update(9.0, 10)  # error = clip(9/6 - 1, -0.2, 0.2) = 0.2
    assert c.value == pytest.approx(0.2 * (1 + 0.2 * 10 / 100))
    c.update(5.4, 10)  # error = -0.1
    assert c.value == pytest.approx(0.2 * 1.02 * (1 - 0.1 * 10 / 100))


def test_adaptive_controller_converges_towards_the_beta_that_hits_the_target():
    c = AdaptiveKLController(1.0, target=2.0, horizon=10)
    for _ in range(200):
        kl = 4.0 / c.value  # a toy policy whose KL falls as β rises; KL = 2 at β = 2
        c.update(kl, 1)
    assert c.value == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), "0.1", True])
def test_bad_coefficients(bad):
    with pytest.raises(ConfigError):
        make_kl_controller(bad)


def test_adaptive_needs_a_positive_start():
    with pytest.raises(ConfigError, match="kl_coef > 0"):
        make_kl_controller(0.0, target_kl=1.0)
