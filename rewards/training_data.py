"""Preference records as reward-model training inputs: token ids per record, and the collator of a batch.

:func:`encode_records` tokenises each record once, before training (the texts the model reads are built by
``rewards.learned.encode_texts``, so training and scoring read the same ids): a :class:`PreferencePair` becomes
the ids of its chosen and of its rejected completion with its margin, a :class:`RatedCompletion` the ids of its
completion with one regression target per rating dimension (``rewards.learned.rating_target``).

:class:`PreferenceCollator` pads a batch of such rows on the right into one model input: the chosen texts of
its pairs, then their rejected texts, then the rated texts, with the margins and rating targets beside them.
A batch may mix pairs and ratings; the loss (``rewards.training.preference_loss``) splits the rows again by
the number of margins and targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewards.learned import encode_texts, pad_right, rating_target
from rewards.preferences import PreferencePair, RatedCompletion

__all__ = ["PreferenceCollator", "encode_records"]


def encode_records(
    records: Sequence[PreferencePair | RatedCompletion],
    tokenizer: Any,
    dims: Sequence[str],
    max_length: int,
    *,
    use_margin: bool,
) -> list[dict[str, Any]]:
    """Tokenise preference records into the rows that :class:`PreferenceCollator` pads.

    Args:
        records: Pairs and rated completions, in any order.
        tokenizer: The reward model's tokenizer.
        dims: The rating dimensions, in the order of the model's outputs (ratings must rate each one).
        max_length: Token limit of a text (cut from the left, as ``rewards.learned.encode_texts`` does).
        use_margin: Keep the pairs' ``margin`` (a pair without one has margin 0); if false every margin is 0.

    Returns:
        One row per record: ``{"chosen": ids, "rejected": ids, "margin": float}`` for a pair,
        ``{"ids": ids, "targets": [float per dimension]}`` for a rated completion.
    """
    pairs = [r for r in records if isinstance(r, PreferencePair)]
    rated = [r for r in records if isinstance(r, RatedCompletion)]
    prompts = [p.prompt for p in pairs] * 2 + [r.prompt for r in rated]
    texts = [p.chosen for p in pairs] + [p.rejected for p in pairs] + [r.completion for r in rated]
    ids = encode_texts(tokenizer, prompts, texts, max_length) if texts else []
    n = len(pairs)
    encoded_pairs = iter(
        {"chosen": ids[i], "rejected": ids[n + i], "margin": float(p.margin or 0.0) if use_margin else 0.0}
        for i, p in enumerate(pairs)
    )
    encoded_rated = iter(
        {"ids": ids[2 * n + i], "targets": [rating_target(r.ratings[d]) for d in dims]} for i, r in enumerate(rated)
    )
    return [next(encoded_pairs) if isinstance(r, PreferencePair) else next(encoded_rated) for r in records]


@dataclass(frozen=True)
class PreferenceCollator:
    """Pads rows of :func:`encode_records` into one batch (a ``Trainer`` data collator).

    Attributes:
        pad_id: The tokenizer's pad id (padded positions are masked out).
        n_dims: The number of rating dimensions (the width of ``rating_targets``).
    """

    pad_id: int
    n_dims: int

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Return ``input_ids`` and ``attention_mask`` (P chosen, P rejected, then R rated texts), ``margins`` (P)
        and ``rating_targets`` (R × dimensions), for a batch of P pairs and R rated completions."""
        import torch

        pairs = [r for r in rows if "chosen" in r]
        rated = [r for r in rows if "ids" in r]
        texts = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs] + [r["ids"] for r in rated]
        input_ids, attention_mask = pad_right(texts, self.pad_id)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "margins": torch.tensor([p["margin"] for p in pairs], dtype=torch.float32),
            "rating_targets": torch.tensor([r["targets"] for r in rated], dtype=torch.float32).reshape(
                len(rated), self.n_dims
            ),
        }
