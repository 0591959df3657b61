"""Fixtures of the reward tests: separable synthetic preferences, a tiny reward model.

Imports stay light here (torch and transformers load inside the fixtures), as in ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The pairs are the reward-model timing benchmark's (one recipe for the tests and the benchmark).
from benchmarks.rm_training_time import separable_pairs

__all__ = ["separable_pairs"]


@pytest.fixture(scope="session")
def tiny_rm_dir(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reward model trained from the tiny toy GPT-2 on separable pairs (a few seconds, once a session)."""
    from rewards import PreferenceData, RewardModelTrainingConfig, train_reward_model

    out = tmp_path_factory.mktemp("tiny-rm") / "rm"
    config = RewardModelTrainingConfig(epochs=2, batch_size=16, learning_rate=1e-3, eval_fraction=0.2, progress=False)
    train_reward_model(PreferenceData(tuple(separable_pairs(160))), tiny_lm_dir, out, config)
    return out
