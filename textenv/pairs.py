"""Two sampled completions per prompt: the one pair sampler behind ``prefs simulate``, ``label tasks`` and the
pipeline's preferences stage.

Completions are cut at the stop strings, as the env cuts them before its reward model scores them. A pair
whose two completions are equal, or either of which is empty (or only whitespace), asks nothing of an
annotator: it is dropped and counted, as is a blank prompt (never sampled).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from textenv.errors import ConfigError

if TYPE_CHECKING:
    from rewards import SimulationResult

__all__ = ["SampledPairs", "cut_at_stop", "sample_pairs"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class SampledPairs:
    """The usable pairs, in prompt order, and how many prompts gave none."""

    prompts: list[str]
    """The prompt of each pair."""
    pairs: list[tuple[str, str]]
    """The two completions of each prompt, cut at the stop strings."""
    indices: list[int]
    """The position of each pair's prompt among the prompts given."""
    dropped: int
    """Prompts without a usable pair: blank, or two equal or empty completions."""

    def select(self, column: Sequence[_T]) -> list[_T]:
        """The values of a per-prompt column (aligned with the prompts given) for the kept pairs."""
        return [column[i] for i in self.indices]

    def annotate(
        self,
        reward: Any,
        *,
        temperature: float = 1.0,
        seed: int = 0,
        meta: Mapping[str, Sequence[Any]] | None = None,
    ) -> SimulationResult:
        """Label the pairs with :func:`rewards.simulate_preferences` (a reward plus Bradley–Terry noise).

        ``meta`` holds per-prompt columns aligned with the prompts given to :func:`sample_pairs`; the result's
        ``skipped`` counts the prompts dropped here too.
        """
        from rewards import simulate_preferences

        columns = {key: self.select(column) for key, column in (meta or {}).items()}
        result = simulate_preferences(
            self.prompts, lambda _: self.pairs, reward, temperature=temperature, seed=seed, meta=columns
        )
        return dataclasses.replace(result, skipped=result.skipped + self.dropped)


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """``text`` up to (without) the first occurrence of any stop string.

    >>> cut_at_stop("one\\ntwo. three", ["\\n", "."])
    'one'
    """
    cut = len(text)
    for stop in stop_strings:
        if stop:
            index = text.find(stop)
            if index != -1:
                cut = min(cut, index)
    return text[:cut]


def sample_pairs(
    model: str | os.PathLike[str] | Any,
    prompts: Sequence[str],
    *,
    tokenizer: Any = None,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_strings: Sequence[str] = (),
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> SampledPairs:
    """Sample two completions per prompt, cut them at ``stop_strings``, and keep the pairs that ask something.

    Sampling is :class:`rewards.LMPairSampler`'s: batched, seeded (the same seed gives the same pairs).

    Args:
        model: A model name or folder (loaded with :func:`textenv.models.load_model_and_tokenizer`), or a loaded
            causal LM, with its ``tokenizer``.
        prompts: The prompts, one pair each (repeat a prompt for more pairs).
        tokenizer: The tokenizer of a loaded ``model``; ``None`` when ``model`` is a name.
        max_new_tokens: Length limit of a completion.
        temperature: Sampling temperature (> 0).
        top_p: Nucleus sampling threshold in ``(0, 1]``.
        stop_strings: Completions are cut before the first of these.
        batch_size: Prompts per ``generate`` call.
        seed: Seed of the sampling.
        progress: Show a progress bar.

    Raises:
        ConfigError: If a sampling setting is out of range, or a loaded ``model`` comes without its tokenizer.
    """
    from rewards import LMPairSampler

    if isinstance(model, (str, os.PathLike)):
        from textenv.models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(model)
    elif tokenizer is None:
        raise ConfigError(f"sample_pairs got a loaded model ({type(model).__name__}) without its tokenizer")
    try:
        sampler = LMPairSampler(
            model,
            tokenizer,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    usable = [i for i, prompt in enumerate(prompts) if prompt.strip()]
    sampled = sampler([prompts[i] for i in usable]) if usable else []
    kept_prompts, pairs, indices = [], [], []
    for i, (first, second) in zip(usable, sampled, strict=True):
        first, second = cut_at_stop(first, stop_strings), cut_at_stop(second, stop_strings)
        if first == second or not first.strip() or not second.strip():
            continue
        kept_prompts.append(prompts[i])
        pairs.append((first, second))
        indices.append(i)
    return SampledPairs(kept_prompts, pairs, indices, len(prompts) - len(pairs))
