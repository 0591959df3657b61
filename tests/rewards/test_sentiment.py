"""Tests of the VADER sentiment reward, including the error when its optional extra is missing."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import rewards
from rewards.errors import MissingDependencyError, RewardError
from rewards.sentiment import VaderSentiment

POSITIVE = "This movie is wonderful, I loved it"
NEGATIVE = "terrible, awful, I hated it"


def test_compound_separates_positive_from_negative() -> None:
    positive, negative = VaderSentiment()(["Review it.", "Review it."], [POSITIVE, NEGATIVE])
    assert positive > 0 > negative


def test_prompt_is_ignored() -> None:
    reward = VaderSentiment()
    a = reward(["I hate everything."], [POSITIVE])
    b = reward(["I love everything."], [POSITIVE])
    np.testing.assert_array_equal(a, b)


def test_share_fields_are_in_unit_interval() -> None:
    for field in ("pos", "neg", "neu"):
        scores = VaderSentiment(field)(["p", "p"], [POSITIVE, NEGATIVE])
        assert np.all((scores >= 0) & (scores <= 1)), field
    neg_pos, neg_neg = VaderSentiment("neg")(["p", "p"], [POSITIVE, NEGATIVE])
    assert neg_neg > neg_pos


def test_bad_field() -> None:
    with pytest.raises(ValueError, match="field must be one of 'compound', 'pos', 'neg', 'neu', got 'joy'"):
        VaderSentiment("joy")  # type: ignore[arg-type]


def test_pickle_drops_the_analyzer() -> None:
    reward = VaderSentiment()
    before = reward(["p"], [POSITIVE])
    assert reward._analyzer is not None
    data = pickle.dumps(reward)
    assert len(data) < 1_000  # the lexicon is not in the pickle
    clone = pickle.loads(data)
    assert clone._analyzer is None
    np.testing.assert_array_equal(clone(["p"], [POSITIVE]), before)


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    with pytest.raises(MissingDependencyError) as info:
        rewards.make("sentiment")
    assert 'pip install "textenv[sentiment]"' in str(info.value)
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, RewardError)
