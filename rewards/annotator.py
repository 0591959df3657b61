"""A simulated annotator: preference pairs labelled by a reward plus Bradley–Terry noise, without people.

For each prompt, two completions are sampled (from a language model, or from any sampling function), both
are scored by a reward ``R``, and the annotator prefers the first with probability

    P(first preferred) = σ((R(first) − R(second)) / temperature),

the Bradley–Terry model with ``R / temperature`` as the strength. A temperature near 0 gives a perfect
annotator (always the higher score; a coin flip on an exact tie); a large one gives an annotator who
agrees with ``R`` only a little more often than chance. The output is the pairwise JSONL that
reward-model training reads (``rewards.preferences``), with the two rewards kept in extra fields
(``reward_chosen``, ``reward_rejected``), so the whole RLHF pipeline runs offline.

Pairs whose two completions are identical (or empty) say nothing and are skipped and counted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewards.errors import RewardInputError
from rewards.preferences import PreferencePair, write_jsonl
from rewards.registry import resolve

__all__ = ["AnnotatedPair", "LMPairSampler", "SimulationResult", "simulate_preferences"]

PairSampler = Callable[[Sequence[str]], Sequence[tuple[str, str]]]
"""Returns two completions for each prompt it is given."""


class LMPairSampler:
    """Sample two completions per prompt from a causal LM with ``generate`` (multinomial sampling).

    Prompts are batched with left padding; only the new tokens are decoded (special tokens dropped).
    Sampling is seeded: the same sampler on the same prompts returns the same completions.

    Args:
        model: A ``transformers`` causal LM.
        tokenizer: Its tokenizer (a pad token is borrowed from EOS when missing; the tokenizer is not
            changed: padding is done per call).
        max_new_tokens: Length limit of a completion.
        temperature: Sampling temperature (> 0).
        top_p: Nucleus sampling threshold in ``(0, 1]``.
        batch_size: Prompts per ``generate`` call.
        seed: Seed of the sampling.
        progress: Show a progress bar over the batches.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_size: int = 8,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        if not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress

    def __call__(self, prompts: Sequence[str]) -> list[tuple[str, str]]:
        """Return two sampled completions for each prompt."""
        import torch
        from tqdm.auto import tqdm

        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        pairs: list[tuple[str, str]] = []
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(self.seed)
            starts = range(0, len(prompts), self.batch_size)
            for start in tqdm(starts, desc="sampling", unit="batch", disable=not self.progress):
                chunk = list(prompts[start : start + self.batch_size])
                encoded = [tok(p)["input_ids"] for p in chunk]
                width = max(len(e) for e in encoded)
                ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for i, row in enumerate(encoded):
                    ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
                    mask[i, width - len(row) :] = 1
                with torch.inference_mode():
                    out = self.model.generate(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        do_sample=True,
                        temperature=self.temperature,
                        top_p=self.top_p,
                        top_k=0,
                        max_new_tokens=self.max_new_tokens,
                        num_return_sequences=2,
                        pad_token_id=pad_id,
                    )
                texts = tok.batch_decode(out[:, width:], skip_special_tokens=True)
                pairs.extend((texts[2 * i], texts[2 * i + 1]) for i in range(len(chunk)))
        return pairs


@dataclass(frozen=True)
class AnnotatedPair:
    """A simulated judgement: the pair, both rewards, and the probability the annotator used."""

    pair: PreferencePair
    reward_chosen: float
    reward_rejected: float
    p_chosen: float

    def to_json(self) -> dict[str, Any]:
        """Return the JSONL record: the native pair plus the rewards."""
        return {
            **self.pair.to_json(),
            "reward_chosen": self.reward_chosen,
            "reward_rejected": self.reward_rejected,
        }


@dataclass(frozen=True)
class SimulationResult:
    """The annotated pairs, and how many prompts gave no usable pair (identical or empty completions)."""

    pairs: list[AnnotatedPair] = field(default_factory=list)
    skipped: int = 0
    agreement: float = math.nan
    """Share of pairs where the annotator picked the higher-reward completion (1.0 at temperature 0)."""

    def write(self, path: str | os.PathLike[str]) -> int:
        """Write the pairs as JSONL, atomically; returns how many were written."""
        return write_jsonl(path, [a.to_json() for a in self.pairs])


def simulate_preferences(
    prompts: Sequence[str],
    sampler: PairSampler,
    reward: Any,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    meta: Mapping[str, Sequence[Any]] | None = None,
) -> SimulationResult:
    """Label two sampled completions per prompt with a reward plus Bradley–Terry noise.

    Args:
        prompts: The prompts, one pair each (repeat a prompt for more pairs); empty ones are skipped.
        sampler: Returns two completions per prompt, e.g. ``LMPairSampler(model, tokenizer)``, or your own
            function ``prompts -> [(a, b), ...]``.
        reward: The annotator's taste: a registered name, a reward function, or a ``ValidatedReward``. A
            NaN or infinite score raises ``InvalidRewardOutputError`` and nothing is returned.
        temperature: Bradley–Terry temperature (``>= 0``); 0 always prefers the higher reward.
        seed: Seed of the annotator's noise.
        meta: Per-prompt fields passed to the reward (e.g. ``reference=[...]``), aligned with ``prompts``.

    Returns:
        The annotated pairs in prompt order.

    Raises:
        ValueError: If ``temperature`` is negative, or the sampler returns the wrong number of pairs.
        RewardInputError: If a ``meta`` column does not have one value per prompt.
    """
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    meta = dict(meta or {})
    for key, column in meta.items():
        if len(column) != len(prompts):
            raise RewardInputError(f"meta field {key!r} has {len(column)} values for {len(prompts)} prompts")
    judge = resolve(reward)
    usable = [i for i, p in enumerate(prompts) if p.strip()]  # an empty prompt is bad training data
    sampled = list(sampler([prompts[i] for i in usable])) if usable else []
    if len(sampled) != len(usable):
        raise ValueError(f"the sampler returned {len(sampled)} pairs for {len(usable)} prompts")
    samples: dict[int, tuple[str, str]] = dict(zip(usable, sampled, strict=True))
    keep = [i for i, (a, b) in samples.items() if a != b and a.strip() and b.strip()]
    if not keep:
        return SimulationResult([], len(prompts))
    kept_prompts = [prompts[i] for i in keep]
    kept_meta = {k: [v[i] for i in keep] for k, v in meta.items()}
    first = [samples[i][0] for i in keep]
    second = [samples[i][1] for i in keep]
    scores = judge(kept_prompts * 2, first + second, **{k: v * 2 for k, v in kept_meta.items()})
    r1, r2 = scores[: len(keep)], scores[len(keep) :]
    rng = np.random.default_rng(seed)
    draws = rng.random(len(keep))
    if temperature == 0:
        p_first = np.where(r1 > r2, 1.0, np.where(r1 < r2, 0.0, 0.5))
    else:
        z = np.clip((r1 - r2) / temperature, -60.0, 60.0)
        p_first = 1.0 / (1.0 + np.exp(-z))
    annotated = []
    agree = 0
    for j in range(len(keep)):
        first_wins = draws[j] < p_first[j]
        chosen, rejected = (first[j], second[j]) if first_wins else (second[j], first[j])
        r_c, r_r = (r1[j], r2[j]) if first_wins else (r2[j], r1[j])
        agree += int(r_c > r_r)
        pair = PreferencePair(kept_prompts[j], chosen, rejected)
        p = float(p_first[j] if first_wins else 1.0 - p_first[j])
        annotated.append(AnnotatedPair(pair, float(r_c), float(r_r), p))
    decided = sum(1 for a in annotated if a.reward_chosen != a.reward_rejected)
    agreement = agree / decided if decided else math.nan
    return SimulationResult(annotated, len(prompts) - len(keep), agreement)
