"""Training a reward model on preferences: Bradley–Terry on pairs, regression on ratings.

``train_reward_model(data, base, out)`` fine-tunes ``AutoModelForSequenceClassification`` from a local
base model folder (any causal LM saved by ``save_pretrained``; its LM head is dropped and a fresh linear
score head is added):

- **pairs** train the total score ``r`` with the Bradley–Terry loss ``-log σ(r(chosen) − r(rejected))``,
  or with ``use_margin`` the margin loss ``-log σ(r(chosen) − r(rejected) − margin)`` for pairs that carry
  a ``margin``;
- **ratings** train one output per dimension with the squared error to ``(rating − 3) / 2``; the total
  score is the weighted sum of the outputs (weights ``dimension_weights``, by default equal and summing
  to 1). Pairs and ratings in the same data train the same model: the pair loss then acts on the total.

A fixed, seeded share of each kind (``eval_fraction``) is held out. After every ``eval_every`` steps (by
default once per epoch) the held-out loss is measured; training stops early after ``patience``
evaluations without improvement, and the weights of the best evaluation are the ones saved.

The loop is transformers' ``Trainer`` (AdamW at a constant learning rate, gradient clipping, its progress
bar) with the preference loss, in :mod:`rewards.training_loop`; :mod:`rewards.training_data` tokenises the
records and pads the batches. Early stopping is ``EarlyStoppingCallback``, and the best weights come back
through ``load_best_model_at_end`` from the checkpoints (weights only) that Trainer writes to a temporary
folder at each evaluation. ``seed`` seeds the split, the score head, the batch order and dropout; the
caller's global random states are restored after.

The output folder is written atomically (temporary folder, then rename), with ``save_pretrained`` weights
(safetensors), the tokenizer, ``textenv_reward_model.json``, ``history.csv`` and ``loss_curve.png`` (drawn
with matplotlib, a dependency of textenv; were it missing, the plot would be skipped with a warning).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewards._util import torch_device
from rewards.errors import RewardModelError
from rewards.model_folder import METADATA_FILE, RewardModelInfo
from rewards.preferences import PreferenceData, PreferencePair, RatedCompletion
from rewards.training_data import PreferenceCollator, encode_records
from rewards.training_loop import (
    build_reward_trainer,
    kept_global_rngs,
    quiet_checkpoint_rotation,
    transformers_progress_bars,
)
from textenv_common.atomic import atomic_folder
from textenv_common.checks import check_int
from textenv_common.hf import LOAD_ERRORS, load_pretrained, load_tokenizer, transformer_blocks
from textenv_common.intervals import wilson_interval

__all__ = ["RewardModelTrainingConfig", "TrainingResult", "train_reward_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardModelTrainingConfig:
    """How to train a reward model; every field has a default that suits a small model on a CPU.

    Attributes:
        epochs: Passes over the training split.
        batch_size: Records (pairs or ratings) per optimisation step; a pair is two texts.
        learning_rate: AdamW learning rate (constant).
        weight_decay: AdamW weight decay (as ``Trainer`` applies it: not to biases and norm weights).
        max_length: Token limit of an input text (cut from the left; see ``rewards.learned``).
        eval_fraction: Share of the pairs and of the ratings held out for evaluation, in ``[0, 0.5]``.
            With 0 nothing is held out and there is no early stopping.
        eval_every: Evaluate every this many steps; ``None`` means once per epoch.
        patience: Evaluations without a lower held-out loss before stopping; 0 never stops early.
        use_margin: Use the pairs' ``margin`` in the loss.
        rating_loss_weight: Weight of the rating loss relative to the pair loss.
        dimension_weights: Weight of each rating dimension in the total score; by default 1/k each.
        train_layers: Fine-tune only the top this-many transformer blocks (plus the final norm and the
            score head), freezing the rest, which makes a step cheaper; ``None`` trains every weight.
        max_grad_norm: Gradient clipping norm.
        seed: Seed of the split, the score head's initialisation, the batch order and dropout.
        progress: Show a progress bar.
        device: Where to train: ``"auto"`` (CUDA when a GPU is visible, else the CPU), ``"cpu"``, ``"cuda[:n]"``
            or ``"mps"``. The saved model is the same wherever it was trained.
    """

    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    max_length: int = 512
    eval_fraction: float = 0.1
    eval_every: int | None = None
    patience: int = 2
    use_margin: bool = False
    rating_loss_weight: float = 1.0
    dimension_weights: Mapping[str, float] | None = None
    train_layers: int | None = None
    max_grad_norm: float = 1.0
    seed: int = 0
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        torch_device(self.device)  # a ValueError naming a bad device, before any model is loaded
        for name in ("epochs", "batch_size", "max_length"):
            check_int(name, getattr(self, name), 1)
        for name in ("patience", "seed"):
            check_int(name, getattr(self, name), 0)
        check_int("eval_every", self.eval_every, 1, optional=True)
        check_int("train_layers", self.train_layers, 0, optional=True)
        for name in ("learning_rate", "weight_decay", "rating_loss_weight", "max_grad_norm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.eval_fraction <= 0.5:
            raise ValueError(f"eval_fraction must be in [0, 0.5], got {self.eval_fraction!r}")
        if self.dimension_weights is not None:
            weights = dict(self.dimension_weights)
            if not weights or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights.values()):
                raise ValueError(f"dimension_weights must map dimension names to finite numbers, got {weights!r}")
            object.__setattr__(self, "dimension_weights", weights)


@dataclass(frozen=True)
class TrainingResult:
    """What ``train_reward_model`` produced.

    Attributes:
        path: The reward model folder.
        info: Its metadata (``info.training`` holds the statistics below and more).
        history: One row per evaluation: step, epoch, train loss, held-out loss and accuracy.
    """

    path: Path
    info: RewardModelInfo
    history: list[dict[str, float]] = field(default_factory=list)


def _split(n: int, fraction: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Return (train, held-out) indices: a seeded share ``fraction`` held out, at least one train index."""
    order = rng.permutation(n).tolist()
    n_eval = 0 if fraction == 0 or n < 2 else min(max(1, round(fraction * n)), n - 1)
    return order[n_eval:], order[:n_eval]


def _freeze_lower_layers(model: Any, train_layers: int) -> int:
    """Freeze all but the top ``train_layers`` blocks, the final norm and the head.

    Returns:
        The number of trainable parameters left.
    """
    import torch

    try:
        blocks = transformer_blocks(model)
    except ValueError as exc:
        raise RewardModelError(f"train_layers: {exc}") from exc
    model.requires_grad_(False)
    trainable = list(blocks)[len(blocks) - train_layers :] if train_layers else []
    for block in trainable:
        block.requires_grad_(True)
    block_params = {id(p) for p in blocks.parameters()}
    # Everything after the blocks (final norm) and the score head: parameters outside the blocks that are
    # not embeddings. Embedding tables are recognised by their module type.
    embedding_params = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    for p in model.parameters():
        if id(p) not in block_params and id(p) not in embedding_params:
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _history(
    log: Sequence[Mapping[str, Any]], steps: int, steps_per_epoch: int, eval_every: int | None
) -> tuple[list[dict[str, float]], list[tuple[int, float]]]:
    """The evaluation history and the per-step train losses, from Trainer's log of a run of ``steps`` steps.

    A history row is written at each evaluation point (every ``eval_every`` steps, else at each epoch's end),
    with or without held-out data: its step, its epoch (1-based), the mean train loss since the previous row,
    the held-out loss and accuracy if measured, and ``best`` = 1 where the held-out loss reached a new low.
    """
    step_losses = [(int(row["step"]), float(row["loss"])) for row in log if "loss" in row]
    evals = {int(row["step"]): row for row in log if "eval_loss" in row}
    points = [s for s in range(1, steps + 1) if s % (eval_every or steps_per_epoch) == 0]
    history: list[dict[str, float]] = []
    previous, best = 0, math.inf
    for point in points:
        row: dict[str, float] = {
            "step": point,
            "epoch": math.ceil(point / steps_per_epoch),
            "train_loss": float(np.mean([loss for s, loss in step_losses if previous < s <= point])),
        }
        if point in evals:
            row["eval_loss"] = float(evals[point]["eval_loss"])
            if "eval_accuracy" in evals[point]:
                row["eval_accuracy"] = float(evals[point]["eval_accuracy"])
            if row["eval_loss"] < best:
                best, row["best"] = row["eval_loss"], 1.0
        history.append(row)
        previous = point
    return history, step_losses


def _plot(history: list[dict[str, float]], steps: list[tuple[int, float]], path: Path) -> bool:
    """Draw the loss curves to ``path``; return False (with a warning) when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("not drawing loss_curve.png: it needs matplotlib (pip install matplotlib)")
        return False
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)  # drawn by Agg, without switching the process's pyplot backend
    ax = fig.subplots()
    if steps:
        xs = [s for s, _ in steps]
        ys = [loss for _, loss in steps]
        window = max(1, len(ys) // 50)
        smooth = np.convolve(ys, np.ones(window) / window, mode="valid")
        label = "train" if window == 1 else f"train (mean of {window} steps)"
        ax.plot(xs[window - 1 :], smooth, label=label, alpha=0.8)
    evals = [h for h in history if "eval_loss" in h]
    if evals:
        ax.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], "o-", label="held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Reward model training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True


def train_reward_model(
    data: PreferenceData,
    base: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: RewardModelTrainingConfig | None = None,
    *,
    overwrite: bool = False,
    base_name: str | None = None,
) -> TrainingResult:
    """Train a reward model on ``data`` from the local model folder ``base`` and save it to ``out``.

    Args:
        data: Pairs and/or ratings (``rewards.load_preferences``).
        base: A local folder written by ``save_pretrained`` (a causal LM or a sequence classifier) with
            its tokenizer. (``textenv rm train`` also resolves textenv's model names to such a folder.)
        out: The folder to write; it must not exist unless ``overwrite``.
        config: Hyperparameters; the defaults if ``None``.
        overwrite: Replace an existing ``out`` (only once the new model is complete).
        base_name: The name to record as the base model in the metadata (default: ``base``), e.g. the
            model id that ``base`` was resolved from.

    Returns:
        The folder, its metadata and the evaluation history.

    Raises:
        RewardModelError: If ``base`` cannot be loaded, ``out`` exists, or the data is empty.
        ValueError: If ``dimension_weights`` does not match the ratings' dimensions.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    config = config or RewardModelTrainingConfig()
    out = Path(out)
    if out.exists() and not overwrite:
        raise RewardModelError(
            f"{out} already exists; choose another --out folder or pass overwrite=True (--overwrite)"
        )
    if len(data) == 0:
        raise RewardModelError("no preference pairs or ratings to train on")
    base_path = Path(base).expanduser()
    if not (base_path / "config.json").is_file():
        raise RewardModelError(
            f"base model {str(base)!r} is not a local model folder (no config.json); pass a folder written "
            "by save_pretrained (`textenv rm train` resolves model names such as textenv/toy-gpt2 for you)"
        )

    dims = data.dimensions or ("score",)
    if data.dimensions:
        weights_map = dict(config.dimension_weights or {d: 1.0 / len(dims) for d in dims})
        if set(weights_map) != set(dims):
            raise ValueError(
                f"dimension_weights must name the rating dimensions {list(dims)}, got {sorted(weights_map)}"
            )
    else:
        if config.dimension_weights and set(config.dimension_weights) != {"score"}:
            raise ValueError("dimension_weights applies to rating dimensions, and this data has no ratings")
        weights_map = {"score": 1.0}
    kind = "+".join(k for k, present in (("pairwise", data.pairs), ("ratings", data.ratings)) if present)

    rng = np.random.default_rng(config.seed)
    pair_train, pair_eval = _split(len(data.pairs), config.eval_fraction, rng)
    rate_train, rate_eval = _split(len(data.ratings), config.eval_fraction, rng)
    train: list[PreferencePair | RatedCompletion] = [data.pairs[i] for i in pair_train] + [
        data.ratings[i] for i in rate_train
    ]
    held_out: list[PreferencePair | RatedCompletion] = [data.pairs[i] for i in pair_eval] + [
        data.ratings[i] for i in rate_eval
    ]

    try:
        tokenizer = load_tokenizer(base_path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = load_pretrained(
                AutoModelForSequenceClassification,
                base_path,
                tokenizer=tokenizer,
                num_labels=len(dims),
                use_safetensors=True,
            )
    except LOAD_ERRORS as exc:
        raise RewardModelError(f"could not load {base_path} as a sequence classifier: {exc}") from exc
    model.config.id2label = dict(enumerate(dims))
    model.config.label2id = {d: i for i, d in enumerate(dims)}
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    max_length = min(config.max_length, int(positions)) if positions else config.max_length
    if max_length != config.max_length:
        config = RewardModelTrainingConfig(**{**asdict(config), "max_length": max_length})
    trainable = (
        _freeze_lower_layers(model, config.train_layers)
        if config.train_layers is not None
        else sum(p.numel() for p in model.parameters())
    )
    device = torch_device(config.device)
    if device.type == "cuda" and device.index not in (None, 0):
        raise RewardModelError(
            f"device {config.device!r}: training runs on the first visible GPU; set CUDA_VISIBLE_DEVICES="
            f"{device.index} and use device='cuda'"
        )
    weights = torch.tensor([weights_map[d] for d in dims], dtype=torch.float32)
    collator = PreferenceCollator(int(tokenizer.pad_token_id), len(dims))
    train_rows = encode_records(train, tokenizer, dims, max_length, use_margin=config.use_margin)
    eval_rows = encode_records(held_out, tokenizer, dims, max_length, use_margin=config.use_margin)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    with (
        tempfile.TemporaryDirectory(prefix="textenv-rm-") as scratch,
        kept_global_rngs(),
        transformers_progress_bars(config.progress),
    ):
        trainer = build_reward_trainer(model, config, weights, train_rows, eval_rows, collator, scratch)
        started = time.perf_counter()
        with quiet_checkpoint_rotation():
            trainer.train()
        seconds = time.perf_counter() - started
        log = list(trainer.state.log_history)
        steps = int(trainer.state.global_step)
        final_metrics = trainer.evaluate() if eval_rows else {}
    model = trainer.model
    model.eval()
    history, step_losses = _history(log, steps, steps_per_epoch, config.eval_every)
    final = {k: float(final_metrics[k]) for k in ("eval_loss", "eval_accuracy") if k in final_metrics}
    stopped_early = bool(eval_rows) and config.patience > 0 and steps < steps_per_epoch * config.epochs
    n_eval_pairs = len(pair_eval)
    stats: dict[str, Any] = {
        "train_pairs": len(pair_train),
        "train_ratings": len(rate_train),
        "eval_pairs": n_eval_pairs,
        "eval_ratings": len(rate_eval),
        "skipped_records": len(data.skipped),
        "steps": steps,
        "epochs_run": history[-1]["epoch"] if history else 0,
        "stopped_early": stopped_early,
        "train_seconds": round(seconds, 2),
        "trainable_parameters": int(trainable),
        "sources": list(data.sources),
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        **{f"final_{k}": v for k, v in final.items()},
    }
    if "eval_accuracy" in final:
        correct = min(max(round(final["eval_accuracy"] * n_eval_pairs), 0), n_eval_pairs)
        low, high = wilson_interval(correct, n_eval_pairs)
        stats["final_eval_accuracy_ci95"] = [low, high]
    info = RewardModelInfo(dims, weights_map, max_length, base_name or str(base), kind, stats)

    with atomic_folder(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / METADATA_FILE).write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8")
        columns = ["step", "epoch", "train_loss", "eval_loss", "eval_accuracy", "best"]
        with (tmp / "history.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)
        _plot(history, step_losses, tmp / "loss_curve.png")
        if not (tmp / "model.safetensors").is_file() and not (tmp / "model.safetensors.index.json").is_file():
            raise RewardModelError(f"save_pretrained did not write safetensors weights into {tmp}")
    return TrainingResult(out, info, history)
