"""``textenv sft``: supervised fine-tuning on demonstrations (:func:`agents.sft.train_sft`)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_commands"]


def _cmd_sft(args: argparse.Namespace) -> int:
    from agents.sft import SFTConfig, train_sft

    config = SFTConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_length=args.max_length,
        eval_fraction=args.eval_fraction,
        lora=args.lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        seed=args.seed,
        progress=not args.no_progress,
        device=args.device,
        precision=args.precision,
    )
    result = train_sft(args.data, args.base, args.out, config, overwrite=args.overwrite)
    m = result.metrics
    before, after = m["eval_loss_before"], m["eval_loss"]
    held_out = f"; held-out loss {before:.4f} -> {after:.4f}" if before is not None and after is not None else ""
    print(f"saved {result.path} ({m['steps']} steps on {m['train_demos']} demonstrations{held_out})")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``sft`` to the ``textenv`` parser's subcommands."""
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
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5, help="learning rate (LoRA: try 1e-4 to 1e-3)")
    p.add_argument("--max-length", type=int, default=256, help="token limit of prompt + response")
    p.add_argument("--eval-fraction", type=float, default=0.1, help="share held out for the eval loss")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (peft), merged into the saved model")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when a GPU is visible), cpu, cuda or mps")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: mixed precision on CUDA")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_sft)
