"""Combinators: rewards built from other rewards (weighted sums, clipping, running normalisation).

Each combinator takes its inner rewards as *specs*, resolved once when it is built:

- a registered name, ``"sentiment"``;
- a mapping with the name under ``"reward"`` and its configuration beside it,
  ``{"reward": "length", "target": 20}`` (the YAML-friendly form);
- a reward function or ``ValidatedReward``.

Inner rewards are wrapped in ``ValidatedReward``, so a NaN from one part is reported under that part's
name, not the sum's.

**Parts in ``info``.** A combinator records the scores of its parts for the latest call in
``last_parts``, a ``dict[str, numpy.ndarray]`` with one array per part, aligned with that call's pairs
(``ValidatedReward.last_parts`` passes it through). The env copies it into the info of an episode's last
step as ``rm_parts``. ``WeightedSum`` reports each term's raw (unweighted) score under its label;
``Clip`` and ``RunningNormalize`` report the inner reward's score under ``"raw"``. Parts of nested
combinators appear under ``"<label>/<part>"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

from rewards.base import Reward
from rewards.errors import RewardConfigError
from rewards.protocol import RewardFn
from rewards.registry import resolve
from rewards.validation import ValidatedReward

__all__ = ["Clip", "RewardSpec", "RunningNormalize", "WeightedSum", "build_reward"]

RewardSpec: TypeAlias = "str | Mapping[str, Any] | RewardFn | ValidatedReward"
"""What a combinator accepts as an inner reward; see the module docstring."""

Parts = dict[str, npt.NDArray[np.float64]]


def build_reward(spec: RewardSpec, *, name: str | None = None) -> ValidatedReward:
    """Resolve a reward spec (a name, a ``{"reward": name, **kwargs}`` mapping, or a callable).

    Args:
        spec: The spec; see the module docstring.
        name: Name the result this way when ``spec`` is a callable (not a registered name).

    Raises:
        RewardConfigError: If a mapping has no ``"reward"`` entry.
        UnknownRewardError: If a name is not registered.
    """
    if isinstance(spec, (str, Mapping, ValidatedReward)):
        return resolve(spec)
    if name is not None and callable(spec):
        return ValidatedReward(name, spec)
    return resolve(spec)


def _nested_parts(label: str, reward: ValidatedReward) -> Parts:
    return {f"{label}/{key}": value for key, value in reward.last_parts.items()}


def _finite(name: str, value: object, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


class WeightedSum(Reward):
    """The weighted sum of several rewards: ``Σ_k weight_k · reward_k(prompts, completions, **meta)``.

    Every call records each term's unweighted scores in ``last_parts`` (see the module docstring), so the
    parts of the total can be logged separately.

    Args:
        terms: The terms, by label. A value is a weight (a number; the label is then a registered reward
            name built with its defaults), or a mapping ``{"reward": spec, "weight": w, **kwargs}`` where
            ``spec`` is a registered name (configured by ``kwargs``) or a reward function and ``weight``
            defaults to 1, or a ``(spec, weight)`` pair. Example::

                WeightedSum({
                    "sentiment": 1.0,
                    "length": {"weight": 0.5, "reward": "length", "target": 20},
                    "mine": (my_reward_fn, 0.1),
                })

    Raises:
        ValueError: If ``terms`` is empty or a weight is not a finite number.
        RewardConfigError: If a term cannot be understood.
    """

    name: ClassVar[str] = "weighted_sum"

    def __init__(self, terms: Mapping[str, Any]) -> None:
        owner = type(self).__qualname__
        if not isinstance(terms, Mapping) or not terms:
            raise ValueError(f"{owner}: terms must be a non-empty mapping of label -> term, got {terms!r}")
        self.terms: dict[str, ValidatedReward] = {}
        self.weights: dict[str, float] = {}
        for label, term in terms.items():
            if not isinstance(label, str) or not label:
                raise RewardConfigError(f"{owner}: term labels must be non-empty strings, got {label!r}")
            spec: Any
            if isinstance(term, (int, float)) and not isinstance(term, bool):
                spec, weight = label, term
            elif isinstance(term, Mapping):
                config = dict(term)
                weight = config.pop("weight", 1.0)
                inner = config.pop("reward", label)
                spec = {"reward": inner, **config} if isinstance(inner, str) else inner
                if not isinstance(inner, str) and config:
                    raise RewardConfigError(
                        f"{owner}: term {label!r} gives keyword arguments {sorted(config)} with a reward "
                        "function; configure the function yourself, or give a registered name"
                    )
            elif isinstance(term, tuple) and len(term) == 2:
                spec, weight = term
            else:
                raise RewardConfigError(
                    f"{owner}: term {label!r} must be a weight, a mapping {{'reward': ..., 'weight': ...}} "
                    f"or a (reward, weight) pair, got {type(term).__name__} {term!r:.80}"
                )
            self.weights[label] = _finite(f"the weight of term {label!r}", weight, owner)
            self.terms[label] = build_reward(spec, name=label)
        self.last_parts: Parts = {}

    @property
    def __name__(self) -> str:
        """``weighted_sum(<label>+<label>...)``: the terms it sums."""
        return f"{self.name}({'+'.join(self.terms)})"

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return the weighted sum of the terms' scores, recording each term's scores in ``last_parts``."""
        total = np.zeros(len(completions), dtype=np.float64)
        parts: Parts = {}
        for label, reward in self.terms.items():
            scores = reward(prompts, completions, **meta)
            parts[label] = scores
            parts.update(_nested_parts(label, reward))
            total += self.weights[label] * scores
        self.last_parts = parts
        return total

    def __repr__(self) -> str:
        inner = ", ".join(f"{label!r}: ({self.terms[label].name}, {w})" for label, w in self.weights.items())
        return f"{type(self).__qualname__}({{{inner}}})"


class Clip(Reward):
    """Clip another reward's scores to ``[low, high]``; either bound may be ``None`` (no bound).

    Args:
        reward: The inner reward spec (see the module docstring).
        low: The lowest score returned, or ``None``.
        high: The highest score returned, or ``None``.

    Raises:
        ValueError: If both bounds are ``None``, a bound is not finite, or ``low > high``.
    """

    name: ClassVar[str] = "clip"

    def __init__(self, reward: RewardSpec, low: float | None = None, high: float | None = None) -> None:
        owner = type(self).__qualname__
        if low is None and high is None:
            raise ValueError(f"{owner}: give low, high or both; with neither, clipping does nothing")
        self.low = None if low is None else _finite("low", low, owner)
        self.high = None if high is None else _finite("high", high, owner)
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{owner}: low ({self.low}) must not exceed high ({self.high})")
        self.reward = build_reward(reward)
        self.last_parts: Parts = {}

    @property
    def __name__(self) -> str:
        """``clip(<inner>)``."""
        return f"{self.name}({self.reward.__name__})"

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return the inner reward's scores clipped to the bounds (``last_parts["raw"]``: unclipped)."""
        raw = self.reward(prompts, completions, **meta)
        self.last_parts = {"raw": raw, **_nested_parts("raw", self.reward)}
        return np.clip(raw, self.low, self.high)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({self.reward.name}, low={self.low}, high={self.high})"


class RunningNormalize(Reward):
    """Standardise another reward by the running mean and standard deviation of all scores seen so far.

    Each call first folds the batch into the running statistics (Chan et al.'s parallel update of count,
    mean and variance), then returns ``(score - mean) / sqrt(var + epsilon)``, optionally clipped to
    ``[-clip, clip]``. The statistics start at mean 0, variance 1 and a near-zero count (as SB3's
    ``VecNormalize`` does), so the first batch is standardised by its own statistics. With
    ``center=False`` the mean is not subtracted (scale only), which keeps the sign of a reward.

    The statistics are plain float attributes, so they pickle with the reward: a checkpoint or a worker
    process resumes from them. Call ``freeze()`` to stop updating (for evaluation); the statistics
    themselves are public: ``count``, ``mean``, ``var``.

    Args:
        reward: The inner reward spec (see the module docstring).
        clip: Clip the normalised score to ``[-clip, clip]``, or ``None``.
        epsilon: Added to the variance, and the starting count.
        center: Subtract the running mean.
        update: Update the statistics on each call (``False`` freezes them from the start).

    Raises:
        ValueError: If ``clip`` or ``epsilon`` is not a positive finite number.
    """

    name: ClassVar[str] = "normalize"

    def __init__(
        self,
        reward: RewardSpec,
        clip: float | None = None,
        epsilon: float = 1e-4,
        center: bool = True,
        update: bool = True,
    ) -> None:
        owner = type(self).__qualname__
        if clip is not None and _finite("clip", clip, owner) <= 0:
            raise ValueError(f"{owner}: clip must be > 0, got {clip}")
        if _finite("epsilon", epsilon, owner) <= 0:
            raise ValueError(f"{owner}: epsilon must be > 0, got {epsilon}")
        self.reward = build_reward(reward)
        self.clip = None if clip is None else float(clip)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.update = bool(update)
        self.count = float(epsilon)
        self.mean = 0.0
        self.var = 1.0
        self.last_parts: Parts = {}

    def freeze(self) -> None:
        """Stop updating the statistics; later calls only normalise."""
        self.update = False

    def _fold(self, batch: npt.NDArray[np.float64]) -> None:
        n = float(batch.size)
        if n == 0:
            return
        batch_mean = float(batch.mean())
        batch_var = float(batch.var())
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.count = total

    @property
    def __name__(self) -> str:
        """``normalize(<inner>)``."""
        return f"{self.name}({self.reward.__name__})"

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Update the statistics (unless frozen) and return the standardised scores."""
        raw = self.reward(prompts, completions, **meta)
        self.last_parts = {"raw": raw, **_nested_parts("raw", self.reward)}
        if self.update:
            self._fold(raw)
        shifted = raw - self.mean if self.center else raw
        scores: npt.NDArray[np.float64] = shifted / math.sqrt(self.var + self.epsilon)
        if self.clip is not None:
            scores = np.clip(scores, -self.clip, self.clip)
        return scores

    def __repr__(self) -> str:
        return (
            f"{type(self).__qualname__}({self.reward.name}, clip={self.clip}, center={self.center}, "
            f"count={self.count:.0f}, mean={self.mean:.4g}, var={self.var:.4g})"
        )
