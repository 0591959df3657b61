"""``textenv sft``: supervised fine-tuning on demonstrations (:func:`agents.sft.train_sft`)."""

from __future__ import annotations

import argparse
from typing import Any

from agents.config_flags import add_dataclass_flags

__all__ = ["add_commands", "sft_config"]


def sft_config(args: argparse.Namespace) -> Any:
    """The :class:`agents.sft.SFTConfig` of the parsed flags (a field left out keeps its default)."""
    from agents.config_flags import flag_values
    from agents.sft import SFTConfig

    return SFTConfig(**flag_values(args, SFTConfig))


def _cmd_sft(args: argparse.Namespace) -> int:
    from agents.sft import train_sft

    config = sft_config(args)
    result = train_sft(args.data, args.base, args.out, config, overwrite=args.overwrite)
    m = result.metrics
    before, after = m["eval_loss_before"], m["eval_loss"]
    held_out = f"; held-out loss {before:.4f} -> {after:.4f}" if before is not None and after is not None else ""
    print(f"saved {result.path} ({m['steps']} steps on {m['train_demos']} demonstrations{held_out})")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``sft`` to the ``textenv`` parser's subcommands (a flag for every SFTConfig field)."""
    from agents.sft import SFTConfig

    p = sub.add_parser(
        "sft",
        help="supervised fine-tuning on demonstrations (loss on the response tokens only)",
        description="Fine-tune a causal LM on prompt/response (or instruction/input/output) JSONL with "
        "transformers' Trainer; --lora trains LoRA adapters and merges them. Writes save_pretrained weights, "
        "sft.json (eval loss before and after), history.csv and loss_curve.png.",
    )
    p.add_argument(
        "--data", required=True, help="demonstrations: JSONL of {prompt, response} or {instruction, input, output}"
    )
    p.add_argument("--base", required=True, help="model to fine-tune: folder, hub id, textenv/toy-gpt2")
    p.add_argument("--out", required=True, help="output model folder (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_dataclass_flags(p, SFTConfig, aliases={"--lr": "learning_rate"})
    p.set_defaults(func=_cmd_sft)
