"""``TokenDistribution``: SB3's categorical distribution over a vocabulary, sampled by inverse CDF.

``torch.distributions.Categorical.sample`` draws through ``torch.multinomial``, which on the CPU draws one
exponential variate per vocabulary entry (about 3 ms for 8 rows of 16k tokens, several percent of a small
model's step). Inverting the cumulative distribution draws one uniform variate per row: the same distribution,
exact up to float64 rounding of the cumulative sums, for about a twentieth of the cost. Arguments are not
re-validated on every step (the logits come from the model, not from a user).
"""

from __future__ import annotations

import torch
from stable_baselines3.common.distributions import CategoricalDistribution
from torch.distributions import Categorical

__all__ = ["BLOCK", "TokenDistribution", "sample_tokens"]

BLOCK = 256
"""Tokens per block of the two-level inverse-CDF draw."""


def sample_tokens(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of ``probs`` (shape ``(n, V)``), drawn by inverting the CDF in two levels.

    The vocabulary is cut into blocks of :data:`BLOCK` tokens: a uniform variate picks a block from the
    cumulative block sums, then a token from the cumulative sum of that block alone, so only ``V / BLOCK + BLOCK``
    cumulative sums are taken per row, in float64. Rows need not be normalised. A token of probability 0 (masked
    by top-k) is never drawn: each draw is the first index whose cumulative probability exceeds the variate, and
    the variate stays strictly below the total.
    """
    n, vocab = probs.shape
    pad = -vocab % BLOCK
    blocks = torch.nn.functional.pad(probs, (0, pad)).view(n, -1, BLOCK)
    block_cdf = blocks.sum(-1, dtype=torch.float64).cumsum(-1)
    u = torch.rand((n, 1), dtype=torch.float64, device=probs.device, generator=generator) * block_cdf[:, -1:]
    u = _below(u, block_cdf[:, -1:])
    block = torch.searchsorted(block_cdf, u, right=True)
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp(min=0)), torch.zeros_like(u))
    rows = torch.arange(n, device=probs.device)
    inner_cdf = blocks[rows, block[:, 0]].double().cumsum(-1)
    offset = _below(u - before, inner_cdf[:, -1:])
    return block[:, 0] * BLOCK + torch.searchsorted(inner_cdf, offset, right=True)[:, 0]


def _below(value: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """``value`` held strictly below ``total`` (float rounding could otherwise reach it)."""
    return torch.minimum(value, torch.nextafter(total, torch.zeros_like(total)))


class TokenDistribution(CategoricalDistribution):
    """A ``CategoricalDistribution`` whose ``sample`` inverts the CDF and whose ``mode`` is the logits' argmax."""

    def proba_distribution(self, action_logits: torch.Tensor) -> TokenDistribution:
        self.distribution = Categorical(logits=action_logits, validate_args=False)
        return self

    def sample(self) -> torch.Tensor:
        return sample_tokens(self.distribution.probs)

    def mode(self) -> torch.Tensor:
        return torch.argmax(self.distribution.logits, dim=-1)
