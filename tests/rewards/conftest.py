"""Fixtures of the reward tests: separable synthetic preferences, a tiny reward model.

Imports stay light here (torch and transformers load inside the fixtures), as in ``tests/conftest.py``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

POSITIVE = ("good", "great", "love", "nice", "best", "happy", "fun")
NEGATIVE = ("bad", "awful", "hate", "worst", "sad")
NEUTRAL = ("the", "movie", "cat", "dog", "book", "is", "was", "a", "very", "and", "food", "game")


def separable_pairs(n: int, seed: int = 0) -> list:
    """``n`` pairs in the toy vocabulary whose chosen text holds positive words and rejected negative ones."""
    from rewards import PreferencePair

    rng = random.Random(seed)

    def text(words: tuple[str, ...]) -> str:
        return " " + " ".join(
            rng.choice(NEUTRAL) if rng.random() < 0.5 else rng.choice(words) for _ in range(rng.randint(3, 8))
        )

    pairs = []
    while len(pairs) < n:
        prompt = " ".join(rng.choice(NEUTRAL) for _ in range(rng.randint(2, 5)))
        chosen, rejected = text(POSITIVE), text(NEGATIVE)
        if chosen != rejected:
            pairs.append(PreferencePair(prompt, chosen, rejected))
    return pairs


@pytest.fixture(scope="session")
def tiny_rm_dir(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reward model trained from the tiny toy GPT-2 on separable pairs (a few seconds, once a session)."""
    from rewards import PreferenceData, RewardModelTrainingConfig, train_reward_model

    out = tmp_path_factory.mktemp("tiny-rm") / "rm"
    config = RewardModelTrainingConfig(epochs=2, batch_size=16, learning_rate=1e-3, eval_fraction=0.2, progress=False)
    train_reward_model(PreferenceData(tuple(separable_pairs(160))), tiny_lm_dir, out, config)
    return out
