"""Tests of the offensive-language penalty (the real alt-profanity-check model, which ships with it)."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import rewards
from rewards.errors import MissingDependencyError
from rewards.offensive import OffensiveLanguage

CLEAN = "Thank you, have a lovely day."
RUDE = "Shut up, you stupid fucking idiot."


def test_offensive_text_costs_more_than_clean_text() -> None:
    reward = rewards.make("offensive")
    scores = reward(["p", "p", "p"], [CLEAN, RUDE, ""])
    assert scores.shape == (3,)
    assert np.all((scores >= -1.0) & (scores <= 0.0))
    assert scores[1] < -0.9 < -0.2 < scores[0]
    assert scores[2] > -0.5


def test_scale_weights_the_penalty_and_prompt_is_ignored() -> None:
    base = OffensiveLanguage()([CLEAN, CLEAN], [RUDE, CLEAN])
    scaled = OffensiveLanguage(scale=2.0)([RUDE, RUDE], [RUDE, CLEAN])
    np.testing.assert_allclose(scaled, 2.0 * base)
    assert OffensiveLanguage(scale=0.0)(["p"], [RUDE])[0] == 0.0


@pytest.mark.parametrize("scale", [-1.0, float("nan"), "1", True])
def test_bad_scale_is_rejected(scale: object) -> None:
    with pytest.raises(ValueError, match="scale"):
        OffensiveLanguage(scale=scale)  # type: ignore[arg-type]


def test_pickles() -> None:
    reward = rewards.make("offensive", scale=0.5)
    clone = pickle.loads(pickle.dumps(reward))
    np.testing.assert_array_equal(clone(["p"], [RUDE]), reward(["p"], [RUDE]))


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "profanity_check", None)  # makes `import profanity_check` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "textenv\[offensive\]"'):
        rewards.make("offensive")
