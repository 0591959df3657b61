"""textenv.pairs: the one pair sampler (cut at stop strings, equal/empty pairs dropped and counted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from textenv.errors import ConfigError
from textenv.pairs import PairSampling, cut_at_stop, sample_pairs


def test_pairs_are_cut_aligned_and_the_dropped_counted(tiny_lm_dir: Path) -> None:
    prompts = ["the movie was", "  ", "my cat and", "i like the"] * 3
    sampled = sample_pairs(tiny_lm_dir, prompts, PairSampling(max_new_tokens=6, stop_strings=[" the "], seed=3))
    assert sampled.dropped == len(prompts) - len(sampled.pairs) >= 3  # the three blank prompts at least
    assert sampled.prompts == sampled.select(prompts)
    assert all(prompts[i].strip() for i in sampled.indices)
    for first, second in sampled.pairs:
        assert first != second
        assert first.strip()
        assert second.strip()
        assert " the " not in first + "|" + second
    again = sample_pairs(tiny_lm_dir, prompts, PairSampling(max_new_tokens=6, stop_strings=[" the "], seed=3))
    assert again == sampled


def test_a_cut_that_leaves_an_empty_completion_drops_the_pair(tiny_lm_dir: Path) -> None:
    whole = sample_pairs(tiny_lm_dir, ["the movie was"] * 4, PairSampling(max_new_tokens=6, seed=0))
    assert whole.pairs
    everything = sorted({c[0] for pair in whole.pairs for c in pair if c})  # every first character
    cut = sample_pairs(
        tiny_lm_dir, ["the movie was"] * 4, PairSampling(max_new_tokens=6, stop_strings=everything, seed=0)
    )
    assert (cut.pairs, cut.dropped) == ([], 4)
    assert cut_at_stop("a.b", ["", "."]) == "a"


def test_bad_settings_are_config_errors(tiny_lm_dir: Path) -> None:
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        sample_pairs(tiny_lm_dir, ["a"], PairSampling(temperature=0))
    with pytest.raises(ConfigError, match="without its tokenizer"):
        sample_pairs(object(), ["a"])
    with pytest.raises(ConfigError, match="not one string"):
        PairSampling(stop_strings="\n")
