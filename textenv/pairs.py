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

__all__ = ["PairSampling", "SampledPairs", "cut_at_stop", "sample_pairs"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class PairSampling:
    """How :func:`sample_pairs` samples: the settings every caller passes through (CLI flags, a pipeline stage).

    All but ``stop_strings`` (applied here, after sampling) are :class:`rewards.LMPairSampler`'s keywords.

    The ranges are checked when sampling starts (:class:`rewards.LMPairSampler`), as a ``ConfigError``.
    """

    max_new_tokens: int = 32
    """Length limit of a completion."""
    temperature: float = 1.0
    """Sampling temperature (> 0)."""
    top_p: float = 1.0
    """Nucleus sampling threshold in ``(0, 1]``."""
    stop_strings: Sequence[str] = ()
    """Completions are cut before the first of these (kept as a tuple)."""
    batch_size: int = 8
    """Prompts per ``generate`` call."""
    seed: int = 0
    """Seed of the sampling: the same seed gives the same pairs."""
    progress: bool = False
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if isinstance(self.stop_strings, str):
            raise ConfigError(f"stop_strings must be a list of strings, not one string: {self.stop_strings!r}")
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))


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
    sampling: PairSampling | None = None,
    *,
    tokenizer: Any = None,
) -> SampledPairs:
    """Sample two completions per prompt, cut them at the stop strings, and keep the pairs that ask something.

    Sampling is :class:`rewards.LMPairSampler`'s: batched, seeded (the same seed gives the same pairs).

    Args:
        model: A model name or folder (loaded with :func:`textenv.models.load_model_and_tokenizer`), or a loaded
            causal LM, with its ``tokenizer``.
        prompts: The prompts, one pair each (repeat a prompt for more pairs).
        sampling: The sampling settings (length, temperature, top-p, stop strings, batch size, seed, progress);
            ``None`` for :class:`PairSampling`'s defaults.
        tokenizer: The tokenizer of a loaded ``model``; ``None`` when ``model`` is a name.

    Raises:
        ConfigError: If a sampling setting is out of range, or a loaded ``model`` comes without its tokenizer.
    """
    from rewards import LMPairSampler

    sampling = PairSampling() if sampling is None else sampling
    if isinstance(model, (str, os.PathLike)):
        from textenv.models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(model)
    elif tokenizer is None:
        raise ConfigError(f"sample_pairs got a loaded model ({type(model).__name__}) without its tokenizer")
    settings = {f.name: getattr(sampling, f.name) for f in dataclasses.fields(sampling) if f.name != "stop_strings"}
    try:
        sampler = LMPairSampler(model, tokenizer, **settings)  # the rest of PairSampling is the sampler's own
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    usable = [i for i, prompt in enumerate(prompts) if prompt.strip()]
    sampled = sampler([prompts[i] for i in usable]) if usable else []
    kept_prompts, pairs, indices = [], [], []
    for i, (first, second) in zip(usable, sampled, strict=True):
        first, second = cut_at_stop(first, sampling.stop_strings), cut_at_stop(second, sampling.stop_strings)
        if first == second or not first.strip() or not second.strip():
            continue
        kept_prompts.append(prompts[i])
        pairs.append((first, second))
        indices.append(i)
    return SampledPairs(kept_prompts, pairs, indices, len(prompts) - len(pairs))
