"""The reward contract: what every reward function in textenv looks like.

A reward function scores a batch of finished texts. It takes the prompts and the completions the policy
wrote for them (two sequences of equal length) plus optional per-pair metadata, and returns one score per
pair. Higher is better. The env resolves a reward once, when it is built (see ``rewards.resolve``), and
then calls it at the end of each episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["RewardFn"]


class RewardFn(Protocol):
    """A batched reward function: ``fn(prompts, completions, **meta) -> scores``.

    Implementations should be picklable (a module-level function or a callable class with plain
    attributes, not a lambda or closure) so that vectorised envs can ship them to worker processes.
    """

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> Sequence[float] | np.ndarray:
        """Score each (prompt, completion) pair.

        Args:
            prompts: The prompts, one per pair.
            completions: The texts the policy wrote, aligned with ``prompts``.
            **meta: Extra per-pair data, each value a sequence aligned with ``prompts`` (for example
                ``reference=[...]`` with a reference answer per prompt). A reward ignores the keys it
                does not use, so it must accept ``**meta``.

        Returns:
            One finite float per pair, in the order of ``prompts``.
        """
        ...
