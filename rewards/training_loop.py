"""The reward model's training loop: transformers' ``Trainer`` with the preference loss.

- :func:`preference_loss`: Bradley–Terry on pairs (with margins) plus the ratings head's squared error, per
  record, on a batch of :class:`rewards.training_data.PreferenceCollator`.
- :func:`reward_trainer_class`: the ``Trainer`` subclass that trains on that loss and measures the held-out
  loss per record and the pairwise accuracy (:func:`held_out_metrics`).
- :func:`build_reward_trainer`: the Trainer for a ``RewardModelTrainingConfig``: constant learning rate,
  evaluation and weight-only checkpoints every ``eval_every`` steps or epoch, the best checkpoint reloaded at
  the end, ``EarlyStoppingCallback`` with ``patience``, the progress bar with the latest losses.
- :func:`kept_global_rngs`, :func:`quiet_checkpoint_rotation`: what the run leaves untouched and unsaid.

transformers is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rewards._util import torch_device

if TYPE_CHECKING:
    from rewards.training import RewardModelTrainingConfig

__all__ = [
    "build_reward_trainer",
    "held_out_metrics",
    "kept_global_rngs",
    "preference_loss",
    "quiet_checkpoint_rotation",
    "reward_trainer_class",
]


def preference_loss(logits: Any, batch: Mapping[str, Any], weights: Any, rating_loss_weight: float) -> tuple[Any, Any]:
    """The training loss of a batch from :class:`rewards.training_data.PreferenceCollator`, and its pairs' score gaps.

    The loss is the mean over the batch's records (pairs and rated completions) of the pair loss
    ``-log σ(r(chosen) − r(rejected) − margin)`` (Bradley–Terry; the margins are 0 unless ``use_margin``) on the
    total score ``r = logits @ weights``, and of ``rating_loss_weight`` × the mean squared error of the outputs
    to the rating targets.

    Args:
        logits: The model's outputs, float, one row per text (P chosen, P rejected, R rated).
        batch: The collated batch (its ``margins`` and ``rating_targets`` give P and R).
        weights: The dimension weights, a float tensor with one entry per output.
        rating_loss_weight: Weight of the rating loss relative to the pair loss.

    Returns:
        ``(loss, gaps)``: the mean loss (a scalar tensor) and ``r(chosen) − r(rejected)`` of each pair, without
        the margin (a pair is ranked right when its gap is > 0; a tie is wrong).
    """
    from torch.nn.functional import logsigmoid

    margins, targets = batch["margins"], batch["rating_targets"]
    n_pairs, n_rated = len(margins), len(targets)
    total = logits[: 2 * n_pairs] @ weights
    gaps = total[:n_pairs] - total[n_pairs:]
    loss = logits.new_zeros(())
    if n_pairs:
        loss = loss - logsigmoid(gaps - margins).sum()
    if n_rated:
        squared = (logits[2 * n_pairs :] - targets).pow(2).mean(dim=1)
        loss = loss + rating_loss_weight * squared.sum()
    return loss / (n_pairs + n_rated), gaps


@functools.cache
def reward_trainer_class() -> type:
    """The ``Trainer`` subclass with the preference loss (built on first use: transformers loads lazily)."""
    import torch
    from transformers import Trainer

    class RewardTrainer(Trainer):
        """``Trainer`` with :func:`preference_loss`, and held-out metrics that count every record once.

        Trainer's own ``eval_loss`` is the mean of the batches' losses, each batch counting as a full one; here
        each held-out batch hands its loss sum and record count, and its pairs' score gaps, to
        :func:`held_out_metrics`, which gives the loss per record and the pairwise accuracy of the whole split.
        """

        def __init__(self, *args: Any, dimension_weights: Any, rating_loss_weight: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.dimension_weights = dimension_weights
            self.rating_loss_weight = rating_loss_weight

        def _loss_and_gaps(self, model: Any, inputs: Mapping[str, Any]) -> tuple[Any, Any]:
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            weights = self.dimension_weights.to(out.logits.device)
            return preference_loss(out.logits.float(), inputs, weights, self.rating_loss_weight)

        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            loss, gaps = self._loss_and_gaps(model, inputs)
            return (loss, {"gaps": gaps}) if return_outputs else loss

        def prediction_step(
            self, model: Any, inputs: Any, prediction_loss_only: bool, ignore_keys: list[str] | None = None
        ) -> tuple[Any, Any, Any]:
            inputs = {key: value.to(self.args.device) for key, value in inputs.items()}  # all tensors
            with torch.no_grad():
                loss, gaps = self._loss_and_gaps(model, inputs)
            records = len(inputs["margins"]) + len(inputs["rating_targets"])
            sums = torch.stack([loss.detach() * records, loss.new_tensor(float(records))]).reshape(1, 2)
            # No loss for Trainer to average; the "labels" say that each chosen side should score higher.
            return None, (gaps.detach(), sums), torch.ones_like(gaps)

    return RewardTrainer


def held_out_metrics(prediction: Any) -> dict[str, float]:
    """``loss`` per held-out record and, with pairs, ``accuracy`` (share of pairs with a gap > 0)."""
    gaps, sums = prediction.predictions
    metrics = {"loss": float(np.sum(sums[:, 0]) / np.sum(sums[:, 1]))}
    if len(gaps):
        metrics["accuracy"] = float(np.mean(np.asarray(gaps) > 0))
    return metrics


def _progress_callback() -> Any:
    """Trainer's progress bar, with the latest losses beside it instead of one printed line per step."""
    from transformers import ProgressCallback

    class LossProgress(ProgressCallback):
        def __init__(self) -> None:
            super().__init__()
            self.latest: dict[str, str] = {}

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            for name, key in (("loss", "loss"), ("eval", "eval_loss")):
                if key in (logs or {}):
                    self.latest[name] = f"{logs[key]:.4f}"
            if self.training_bar is not None and self.latest:
                self.training_bar.set_postfix(self.latest)

    return LossProgress()


def build_reward_trainer(
    model: Any,
    config: RewardModelTrainingConfig,
    dimension_weights: Any,
    train_rows: Sequence[dict[str, Any]],
    eval_rows: Sequence[dict[str, Any]],
    collator: Any,
    scratch: str | os.PathLike[str],
) -> Any:
    """A :class:`RewardTrainer` for ``config`` (its checkpoints go to ``scratch``, a temporary folder).

    Held-out rows turn on evaluation every ``eval_every`` steps (else once per epoch), a checkpoint of the
    weights at each evaluation, the best one (lowest held-out loss) reloaded at the end, and, with a
    ``patience``, early stopping.
    """
    from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback, TrainingArguments

    evaluate = bool(eval_rows)
    strategy = ("steps" if config.eval_every else "epoch") if evaluate else "no"
    args = TrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        lr_scheduler_type="constant",
        max_grad_norm=config.max_grad_norm,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=config.eval_every,
        save_steps=config.eval_every or 1,  # read only by the "steps" strategy
        save_only_model=True,
        save_total_limit=1,
        load_best_model_at_end=evaluate,
        metric_for_best_model="eval_loss" if evaluate else None,
        greater_is_better=False,
        logging_strategy="steps",
        logging_steps=1,
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=not config.progress,
        remove_unused_columns=False,
        label_names=["margins"],
        dataloader_pin_memory=False,
        use_cpu=torch_device(config.device).type == "cpu",
    )
    callbacks = [EarlyStoppingCallback(config.patience)] if evaluate and config.patience else []
    trainer = reward_trainer_class()(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=list(train_rows) or None,
        eval_dataset=list(eval_rows) or None,
        compute_metrics=held_out_metrics,
        callbacks=callbacks,
        dimension_weights=dimension_weights,
        rating_loss_weight=config.rating_loss_weight,
    )
    trainer.remove_callback(PrinterCallback)  # the losses go to history.csv, not to stdout
    if config.progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_progress_callback())
    return trainer


@contextlib.contextmanager
def kept_global_rngs() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global random states after the block (Trainer reseeds them)."""
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng():
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def transformers_progress_bars(enabled: bool) -> Iterator[None]:
    """With ``enabled`` False, hide transformers' own bars in the block (Trainer's checkpoint saves and reloads
    show "Writing model shards" and "Loading weights"), then restore the process's setting."""
    from transformers.utils import logging as hf_logging

    hide = not enabled and hf_logging.is_progress_bar_enabled()
    if hide:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if hide:
            hf_logging.enable_progress_bar()


class _DropMtimeWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "mtime may not be reliable" not in record.getMessage()


@contextlib.contextmanager
def quiet_checkpoint_rotation() -> Iterator[None]:
    """Silence Trainer's warning that the file system's mtime is unreliable: checkpoints of a small model are
    written less than a second apart, which is what it actually measures; it then orders them by step."""
    rotation_logger = logging.getLogger("transformers.trainer_utils")
    quiet = _DropMtimeWarning()
    rotation_logger.addFilter(quiet)
    try:
        yield
    finally:
        rotation_logger.removeFilter(quiet)
