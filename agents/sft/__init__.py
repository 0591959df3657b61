"""Supervised fine-tuning (SFT) on demonstrations: ``textenv sft --data demos.jsonl --base MODEL --out DIR``.

:mod:`agents.sft.data` reads demonstrations and masks the prompt out of the loss; :mod:`agents.sft.train`
runs transformers' ``Trainer`` (optionally with LoRA adapters, merged before saving) and writes a model folder
that loads like any other.
"""

from __future__ import annotations

from agents.sft.data import Demonstration, encode_demonstration, load_demonstrations, parse_demonstration
from agents.sft.train import SFTConfig, SFTResult, merge_lora, train_sft

__all__ = [
    "Demonstration",
    "SFTConfig",
    "SFTResult",
    "encode_demonstration",
    "load_demonstrations",
    "merge_lora",
    "parse_demonstration",
    "train_sft",
]
