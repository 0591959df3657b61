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
evaluations without improvement, and the weights of the best evaluation are the ones saved. The loop is
plain PyTorch (AdamW, gradient clipping, a tqdm progress bar).

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
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewards._util import torch_device
from rewards.errors import RewardModelError
from rewards.learned import METADATA_FILE, RewardModelInfo, encode_texts, pad_right, rating_target
from rewards.preferences import PreferenceData, PreferencePair, RatedCompletion
from textenv_common.atomic import atomic_folder
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
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
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
        seed: Seed of the split, the score head's initialisation and the batch order.
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
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("patience", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        for name, allow_none in (("eval_every", True), ("train_layers", True)):
            value = getattr(self, name)
            if value is None and allow_none:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "eval_every" else 0):
                raise ValueError(
                    f"{name} must be a {'positive' if name == 'eval_every' else 'non-negative'} int or "
                    f"None, got {value!r}"
                )
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


class _Batcher:
    """Turns records into model inputs and computes the loss of a batch."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        dims: tuple[str, ...],
        weights: Any,
        config: RewardModelTrainingConfig,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.dims = dims
        self.weights = weights  # tensor (k,)
        self.config = config

    def forward(self, prompts: list[str], completions: list[str]) -> Any:
        ids, mask = pad_right(
            encode_texts(self.tokenizer, prompts, completions, self.config.max_length),
            int(self.tokenizer.pad_token_id),
        )
        device = self.weights.device
        return self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()

    def loss(self, records: Sequence[PreferencePair | RatedCompletion]) -> tuple[Any, int, int]:
        """Return (mean loss, correctly ordered pairs, pairs) of a batch of records."""
        import torch
        from torch.nn.functional import logsigmoid

        pairs = [r for r in records if isinstance(r, PreferencePair)]
        rated = [r for r in records if isinstance(r, RatedCompletion)]
        prompts = [p.prompt for p in pairs] * 2 + [r.prompt for r in rated]
        texts = [p.chosen for p in pairs] + [p.rejected for p in pairs] + [r.completion for r in rated]
        out = self.forward(prompts, texts)
        terms = []
        correct = 0
        if pairs:
            total = out[: 2 * len(pairs)] @ self.weights
            diff = total[: len(pairs)] - total[len(pairs) :]
            if self.config.use_margin:
                diff = diff - torch.tensor([p.margin or 0.0 for p in pairs], dtype=diff.dtype, device=diff.device)
            terms.append(-logsigmoid(diff).sum())
            correct = int((total[: len(pairs)] > total[len(pairs) :]).sum())
        if rated:
            target = torch.tensor(
                [[rating_target(r.ratings[d]) for d in self.dims] for r in rated], dtype=out.dtype, device=out.device
            )
            squared = (out[2 * len(pairs) :] - target).pow(2).mean(dim=1)
            terms.append(self.config.rating_loss_weight * squared.sum())
        return sum(terms) / len(records), correct, len(pairs)


def _evaluate(
    batcher: _Batcher, records: Sequence[PreferencePair | RatedCompletion], batch_size: int
) -> dict[str, float]:
    import torch

    was_training = batcher.model.training
    batcher.model.eval()
    loss_sum, correct, n_pairs = 0.0, 0, 0
    with torch.inference_mode():
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            loss, c, p = batcher.loss(chunk)
            loss_sum += float(loss) * len(chunk)
            correct += c
            n_pairs += p
    batcher.model.train(was_training)
    result = {"eval_loss": loss_sum / max(len(records), 1)}
    if n_pairs:
        result["eval_accuracy"] = correct / n_pairs
    return result


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
    from tqdm.auto import tqdm
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
    model.to(device)
    model.train()
    weights = torch.tensor([weights_map[d] for d in dims], dtype=torch.float32, device=device)
    batcher = _Batcher(model, tokenizer, dims, weights, config)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )

    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    history: list[dict[str, float]] = []
    step_losses: list[tuple[int, float]] = []
    best_loss, best_state, stale, step, stopped_early = math.inf, None, 0, 0, False
    started = time.perf_counter()
    total_steps = steps_per_epoch * config.epochs
    progress = tqdm(total=total_steps, desc="reward model", unit="step", disable=not config.progress)
    order_rng = np.random.default_rng(config.seed + 1)
    try:
        for epoch in range(config.epochs):
            order = order_rng.permutation(len(train))
            for start in range(0, len(train), config.batch_size):
                batch = [train[i] for i in order[start : start + config.batch_size]]
                loss, _, _ = batcher.loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                step += 1
                step_losses.append((step, float(loss.detach())))
                progress.update(1)
                progress.set_postfix(loss=f"{step_losses[-1][1]:.4f}")
                last_of_epoch = start + config.batch_size >= len(train)
                if not (step % config.eval_every == 0 if config.eval_every else last_of_epoch):
                    continue
                recent = [loss_ for s, loss_ in step_losses if s > (history[-1]["step"] if history else 0)]
                row: dict[str, float] = {
                    "step": step,
                    "epoch": epoch + 1,
                    "train_loss": float(np.mean(recent)),
                }
                if held_out:
                    row.update(_evaluate(batcher, held_out, config.batch_size))
                    progress.set_postfix(loss=f"{step_losses[-1][1]:.4f}", eval=f"{row['eval_loss']:.4f}")
                    if row["eval_loss"] < best_loss - 1e-6:
                        best_loss, stale = row["eval_loss"], 0
                        best_state = {
                            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
                        }
                        row["best"] = 1.0
                    else:
                        stale += 1
                history.append(row)
                if held_out and config.patience and stale >= config.patience and step < total_steps:
                    stopped_early = True
                    break
            if stopped_early:
                break
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    if best_state is not None:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in best_state.items():
                params[name].copy_(value)
    model.eval()
    final = _evaluate(batcher, held_out, config.batch_size) if held_out else {}
    n_eval_pairs = len(pair_eval)
    stats: dict[str, Any] = {
        "train_pairs": len(pair_train),
        "train_ratings": len(rate_train),
        "eval_pairs": n_eval_pairs,
        "eval_ratings": len(rate_eval),
        "skipped_records": len(data.skipped),
        "steps": step,
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
