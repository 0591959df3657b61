"""``TokenDistribution``: SB3's categorical distribution over a vocabulary, sampled by inverse CDF.

``torch.distributions.Categorical.sample`` draws through ``torch.multinomial``, which on the CPU draws one
exponential variate per vocabulary entry (about 3 ms for 8 rows of 16k tokens, several percent of a small
model's step). Inverting the cumulative distribution draws one uniform variate per row: the same distribution,
exact up to float64 rounding of the cumulative sums, for about a twentieth of the cost. Arguments are not
re-validated on every step (the logits come from the model, not from a user).

Log-probabilities and entropies come from one ``log_softmax`` of the logits. ``Categorical`` normalises with a
``logsumexp``, then takes a ``softmax`` and a clamped copy for the entropy: each a full ``(transitions × V)``
tensor that training keeps for the backward pass (16 MB each for 256 transitions of a 16k vocabulary). Here the
backward keeps the log-probabilities and their exponentials only. ``distribution`` still gives the
``Categorical`` for code that asks for it, built when first read.
"""

from __future__ import annotations

import torch
from stable_baselines3.common.distributions import CategoricalDistribution
from torch.distributions import Categorical

__all__ = ["BLOCK", "TokenDistribution", "sample_tokens"]

BLOCK = 256
"""Tokens per block of the two-level inverse-CDF draw."""


def sample_tokens(
    probs: torch.Tensor, generator: torch.Generator | None = None, uniforms: torch.Tensor | None = None
) -> torch.Tensor:
    """One token per row of ``probs`` (shape ``(n, V)``), drawn by inverting the CDF in two levels.

    The vocabulary is cut into blocks of :data:`BLOCK` tokens: a uniform variate picks a block from the
    cumulative block sums, then a token from the cumulative sum of that block alone, so only ``V / BLOCK + BLOCK``
    cumulative sums are taken per row, in float64. Rows need not be normalised. A token of probability 0 (masked
    by top-k) is never drawn: each draw is the first index whose cumulative probability exceeds the variate, and
    the variate stays strictly below the total.

    ``uniforms`` (shape ``(n,)``, values in [0, 1)) gives the variates instead of drawing them: two policies fed
    the same variates pick the same token wherever their CDFs agree, which is what common random numbers in a
    paired evaluation need (:mod:`agents.evaluation`).
    """
    n, vocab = probs.shape
    pad = -vocab % BLOCK
    blocks = torch.nn.functional.pad(probs, (0, pad)).view(n, -1, BLOCK)
    block_cdf = blocks.sum(-1, dtype=torch.float64).cumsum(-1)
    if uniforms is None:
        uniforms = torch.rand((n, 1), dtype=torch.float64, device=probs.device, generator=generator)
    u = uniforms.reshape(n, 1).to(device=probs.device, dtype=torch.float64) * block_cdf[:, -1:]
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
    """A ``CategoricalDistribution`` over normalised log-probabilities; ``sample`` inverts the CDF."""

    log_probs: torch.Tensor
    """Log-probabilities of every token, shape ``(n, V)``."""
    _categorical: Categorical | None = None

    def proba_distribution(self, action_logits: torch.Tensor) -> TokenDistribution:
        self.log_probs = torch.log_softmax(action_logits, dim=-1)
        self._categorical = None
        return self

    @property
    def distribution(self) -> Categorical:
        """The same distribution as a ``torch.distributions.Categorical``."""
        if self._categorical is None:
            self._categorical = Categorical(logits=self.log_probs, validate_args=False)
        return self._categorical

    @distribution.setter
    def distribution(self, value: Categorical) -> None:
        self._categorical = value
        self.log_probs = value.logits

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        log_probs = self.log_probs
        if bool(torch.isneginf(log_probs).any()):  # tokens masked out (top-k): 0 · log 0 counts as 0
            log_probs = log_probs.clamp(min=torch.finfo(log_probs.dtype).min)
        return -(self.log_probs.exp() * log_probs).sum(-1)

    def sample(self) -> torch.Tensor:
        return sample_tokens(self.log_probs.exp())

    def sample_with(self, uniforms: torch.Tensor) -> torch.Tensor:
        """The tokens that the variates ``uniforms`` (shape ``(n,)``, in [0, 1)) pick by inverting the CDF."""
        return sample_tokens(self.log_probs.exp(), uniforms=uniforms)

    def mode(self) -> torch.Tensor:
        return torch.argmax(self.log_probs, dim=-1)
