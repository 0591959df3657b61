"""A plain sampling policy: draw the next token from a causal LM and report its log-probability.

It is what the demo and the tests use to drive an env through the log-prob channel, and the smallest example
of an agent that keeps the KL term exact. It recomputes the whole window every step (no KV cache, no value
head): the training policy for stable-baselines3 lives in :mod:`agents`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from textenv.errors import ConfigError

__all__ = ["LMSampler", "position_ids"]


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions of left-padded rows: 0 at each row's first real token, counting up from there."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class LMSampler:
    """Sample next tokens from ``model`` at a temperature, for batched text-env observations.

    Args:
        model: A Hugging Face causal LM (used under ``torch.no_grad``).
        temperature: Softmax temperature > 0; the reported log-probabilities are of the tempered distribution.
        seed: Seed of the sampler's own torch generator.
    """

    def __init__(self, model: Any, temperature: float = 1.0, seed: int | None = None) -> None:
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0; got {temperature!r}.")
        self.model = model
        self.temperature = float(temperature)
        self.generator = torch.Generator(device="cpu")
        if seed is not None:
            self.generator.manual_seed(seed)

    @torch.no_grad()
    def logprobs(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """``log π(· | window)`` for each row of ``obs``, shape ``(n, V)``."""
        device = next(self.model.parameters()).device
        ids = torch.as_tensor(np.asarray(obs["input_ids"]), dtype=torch.long, device=device)
        mask = torch.as_tensor(np.asarray(obs["attention_mask"]), dtype=torch.long, device=device)
        if ids.ndim == 1:
            ids, mask = ids[None], mask[None]
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
        return torch.log_softmax(out.logits[:, -1].float() / self.temperature, dim=-1).cpu()

    def act(self, obs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Sample one token per row; returns ``(actions, logprobs)`` as NumPy arrays of shape ``(n,)``."""
        logp = self.logprobs(obs)
        actions = torch.multinomial(logp.exp(), 1, generator=self.generator)[:, 0]
        return actions.numpy().astype(np.int64), logp.gather(1, actions[:, None])[:, 0].double().numpy()
