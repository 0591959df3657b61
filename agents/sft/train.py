"""Supervised fine-tuning of a causal LM on demonstrations, with transformers' ``Trainer``.

:func:`train_sft` tokenises demonstrations with :func:`agents.sft.data.encode_demonstration` (loss on the
response tokens only), holds out a seeded share for the eval loss, trains with ``Trainer`` (full fine-tuning,
or LoRA adapters through ``peft`` with ``lora=True``), and writes a folder that loads like any model:

- ``save_pretrained`` weights (safetensors) and the tokenizer; LoRA adapters are merged into the weights
  first, so the folder is a plain model (no adapter files) that the env, ``textenv train`` and the reward
  model trainer load by path;
- ``sft.json``: the config, the data counts, and the eval loss before and after training;
- ``history.csv`` (the Trainer's logged losses) and ``loss_curve.png`` (train and eval loss against steps).

The folder is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.errors import ConfigError, DemonstrationError, PipelineError
from agents.sft.data import Demonstration, encode_demonstration, load_demonstrations
from textenv_common.atomic import atomic_folder
from textenv_common.checks import check_int

__all__ = ["SFTConfig", "SFTResult", "merge_lora", "train_sft"]

SFT_INFO_FILE = "sft.json"


@dataclass(frozen=True)
class SFTConfig:
    """How to fine-tune on demonstrations (every field has a ``textenv sft`` flag and a YAML key)."""

    epochs: float = 1.0
    """Passes over the training split (fractions allowed)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides ``epochs``)."""
    batch_size: int = 8
    """Demonstrations per step."""
    learning_rate: float = 5e-5
    """AdamW learning rate (LoRA usually wants about 1e-4 to 1e-3)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_ratio: float = 0.0
    """Share of the steps with a linearly rising learning rate."""
    max_length: int = 256
    """Token limit of prompt + response (the prompt is cut from its start first)."""
    eval_fraction: float = 0.1
    """Share of the demonstrations held out for the eval loss, in [0, 0.5]."""
    eval_steps: int | None = None
    """Evaluate every this many steps; ``None``: once per epoch."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of every weight; they are merged into the saved model."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path."""
    lora_target_modules: str | list[str] = "all-linear"
    """Modules that get adapters: ``"all-linear"`` or a list of module names."""
    seed: int = 0
    """Seed of the split, the data order and the adapters' initialisation."""
    progress: bool = True
    """Show the Trainer's progress bar."""
    device: str = "auto"
    """Where to train: 'auto' (CUDA when a GPU is visible), 'cpu', 'cuda' or 'mps' (for another GPU than the
    first, set CUDA_VISIBLE_DEVICES)."""
    precision: str = "fp32"
    """'fp32', or 'bf16' (mixed precision on CUDA, float32 master weights)."""

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda", "cuda:0", "mps"):
            raise ConfigError(
                f"sft.device must be 'auto', 'cpu', 'cuda' or 'mps'; got {self.device!r}. For another GPU than "
                "the first, set CUDA_VISIBLE_DEVICES=<n> and use 'cuda'."
            )
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"sft.precision must be 'fp32' or 'bf16'; got {self.precision!r}.")
        for name in ("batch_size", "max_length", "lora_r", "lora_alpha"):
            check_int(f"sft.{name}", getattr(self, name), 1, error=ConfigError)
        check_int("sft.seed", self.seed, 0, error=ConfigError)
        for name in ("max_steps", "eval_steps"):
            check_int(f"sft.{name}", getattr(self, name), 1, error=ConfigError, optional=True)
        for name in ("epochs", "learning_rate", "weight_decay", "warmup_ratio", "lora_dropout", "eval_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"sft.{name} must be a finite number ≥ 0; got {value!r}.")
        if self.learning_rate == 0 or self.epochs == 0:
            raise ConfigError(f"sft.learning_rate and sft.epochs must be > 0; got {self.learning_rate}, {self.epochs}.")
        if self.eval_fraction > 0.5:
            raise ConfigError(f"sft.eval_fraction must be in [0, 0.5]; got {self.eval_fraction}.")
        if self.warmup_ratio >= 1 or self.lora_dropout >= 1:
            raise ConfigError("sft.warmup_ratio and sft.lora_dropout must be < 1.")
        targets = self.lora_target_modules
        if not (isinstance(targets, str) or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))):
            raise ConfigError(f"sft.lora_target_modules must be 'all-linear' or a list of names; got {targets!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for YAML and JSON (``progress`` and ``device`` are left out: they change nothing learned)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("progress", "device")}


@dataclass(frozen=True)
class SFTResult:
    """What :func:`train_sft` wrote and measured."""

    path: Path
    """The model folder."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """``train_demos``, ``eval_demos``, ``steps``, ``eval_loss_before``, ``eval_loss``, ``train_loss``, ..."""
    history: list[dict[str, float]] = field(default_factory=list)
    """The Trainer's log: one row per logging or evaluation step."""


def merge_lora(model: Any) -> Any:
    """The plain model of a peft model, with its LoRA updates added into the base weights."""
    return model.merge_and_unload()


def _lora_model(model: Any, config: SFTConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise PipelineError(f'LoRA needs peft ({exc}); install it with: pip install "textenv[lora]"') from exc
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # GPT-2's Conv1D layers store weights transposed; peft notices and sets fan_in_fan_out itself.
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to False", category=UserWarning)
        return get_peft_model(model, lora)


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_eval = 0 if fraction == 0 or n < 2 else min(max(1, round(fraction * n)), n - 1)
    return order[n_eval:], order[:n_eval]


def train_sft(
    data: str | os.PathLike[str] | list[Demonstration],
    base: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: SFTConfig | None = None,
    *,
    overwrite: bool = False,
) -> SFTResult:
    """Fine-tune ``base`` on demonstrations and save the result to ``out`` (see the module docstring).

    Args:
        data: A demonstrations file (JSONL or ``.json``) or a list of :class:`Demonstration`.
        base: The model to start from: a folder, a hub id, ``textenv/toy-gpt2`` or the default model id.
        out: The folder to write; it must not exist unless ``overwrite``.
        config: Hyperparameters; the defaults if ``None``.
        overwrite: Replace an existing ``out`` (only once the new model is complete).

    Raises:
        DemonstrationError: The data is missing, empty or malformed.
        ConfigError: ``out`` exists without ``overwrite``.
        ModelLoadError: ``base`` cannot be loaded.
    """
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments

    from textenv.models import load_model_and_tokenizer, resolve_device

    config = config or SFTConfig()
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; choose another --out folder or pass --overwrite.")
    demos = list(data) if isinstance(data, list) else load_demonstrations(data)
    if not demos:
        raise DemonstrationError("no demonstrations to train on.")
    model, tokenizer = load_model_and_tokenizer(base)
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    max_length = min(config.max_length, int(positions)) if positions else config.max_length
    rows = [encode_demonstration(tokenizer, demo, max_length) for demo in demos]
    train_idx, eval_idx = _split(len(rows), config.eval_fraction, config.seed)
    train_rows, eval_rows = [rows[i] for i in train_idx], [rows[i] for i in eval_idx]

    if config.lora:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = _lora_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.train()
    tokenizer.padding_side = "right"  # labels and ids padded at the end; the env itself pads on the left
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="textenv-sft-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=float(config.epochs),
            max_steps=config.max_steps or -1,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_ratio,  # a float < 1 is a share of the steps
            lr_scheduler_type="linear",
            eval_strategy=("steps" if config.eval_steps else "epoch") if eval_rows else "no",
            eval_steps=config.eval_steps,
            eval_on_start=bool(eval_rows),
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            seed=config.seed,
            data_seed=config.seed,
            disable_tqdm=not config.progress,
            dataloader_pin_memory=False,
            use_cpu=str(resolve_device(config.device)) == "cpu",
            bf16=config.precision == "bf16",
        )
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=collator,
            train_dataset=train_rows,  # any indexable of dicts works
            eval_dataset=eval_rows or None,
            processing_class=tokenizer,
        )
        trainer.remove_callback(PrinterCallback)  # the losses go to history.csv, not to stdout
        output = trainer.train()
        final_eval = trainer.evaluate() if eval_rows else {}
        history = [dict(row) for row in trainer.state.log_history]
    seconds = time.perf_counter() - started
    model = merge_lora(model) if config.lora else model
    model.eval()
    tokenizer.padding_side = "left"

    eval_losses = [row["eval_loss"] for row in history if "eval_loss" in row]
    metrics: dict[str, Any] = {
        "base": str(base),
        "demonstrations": len(demos),
        "train_demos": len(train_rows),
        "eval_demos": len(eval_rows),
        "steps": int(output.global_step),
        "train_loss": float(output.training_loss),
        "eval_loss_before": float(eval_losses[0]) if eval_losses else None,
        "eval_loss": float(final_eval["eval_loss"]) if final_eval else None,
        "trainable_parameters": int(trainable),
        "train_seconds": round(seconds, 2),
        "config": config.to_dict(),
    }
    with atomic_folder(out, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / SFT_INFO_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        _write_history(history, tmp / "history.csv")
        _plot(history, tmp / "loss_curve.png")
    return SFTResult(out, metrics, history)


def _write_history(history: list[dict[str, Any]], path: Path) -> None:
    columns = ["step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def _plot(history: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [(row["step"], row["loss"]) for row in history if "loss" in row]
    evals = [(row["step"], row["eval_loss"]) for row in history if "eval_loss" in row]
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="C0", alpha=0.8)
    if evals:
        ax.plot(*zip(*evals, strict=True), label="eval loss", color="C1", marker="o")
    ax.set(title="Supervised fine-tuning", xlabel="optimizer step", ylabel="cross-entropy on response tokens")
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    fig.savefig(path, format="png", dpi=120)
