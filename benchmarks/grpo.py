"""Row E: TRL's ``GRPOTrainer`` end to end, on the same model, prompts, batch, completion length and reward.

Runs offline from the model folder the other rows use (``HF_HUB_OFFLINE``). Settings that differ from TRL's
defaults are the ones that would otherwise make the comparison unfair to either side: float32 weights (TRL
defaults to bf16, which this CPU run does not use for textenv either), no gradient checkpointing (textenv does
not checkpoint), no logging, saving or progress bars. The KL term is on (``beta`` = the env's ``kl_coef``), so
TRL holds and scores a reference model as textenv does. Each optimizer step generates ``batch`` completions
(``num_generations`` per prompt) and updates on them once, as ``PPO(n_epochs=1)`` with one minibatch does.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

__all__ = ["grpo_args", "grpo_available", "grpo_model", "run_grpo"]


def grpo_available() -> str | None:
    """``None`` when TRL can be imported, else why not."""
    try:
        import trl  # noqa: F401
    except ImportError as err:
        return f"trl is not installed ({err}); install the bench extra: pip install 'textenv[bench]'"
    return None


def grpo_args(out: str, *, seed: int, use_cpu: bool = True, **settings: Any) -> Any:
    """TRL's ``GRPOConfig`` as every benchmark runs it (float32, no checkpoints, no logs), with ``settings`` over it."""
    from trl import GRPOConfig

    common: dict[str, Any] = {"output_dir": out, "bf16": False, "use_cpu": use_cpu, "gradient_checkpointing": False,
                              "report_to": "none", "logging_steps": 10_000, "save_strategy": "no",
                              "disable_tqdm": True, "seed": seed}  # fmt: skip
    return GRPOConfig(**{**common, **settings})


def grpo_model(folder: str) -> tuple[Any, Any]:
    """The model (float32) and the left-padding tokenizer of ``folder``, as TRL's generation wants them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def run_grpo(
    folder: str, prompts: list[str], reward: Callable[..., list[float]], *, batch: int, new_tokens: int, runs: int,
    kl_coef: float = 0.05, seed: int = 0, lora: bool = False, device: str = "cpu",
) -> dict[str, Any]:  # fmt: skip
    """Train ``1 + runs`` steps; the first is the warm-up. Returns wall and CPU seconds and tokens of each run.

    ``lora=True`` trains a LoRA adapter (``peft_config``) with the settings of textenv's ``lora=True``; TRL then
    scores its reference as the same model with the adapter disabled.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    tokens: list[int] = []

    def counted(prompts: Any, completions: Any, completion_ids: Any = None, **meta: Any) -> list[float]:
        tokens.append(sum(len(ids) for ids in completion_ids))
        return reward(prompts, completions, **meta)

    counted.__name__ = "distinct_words"
    ends: list[tuple[float, float]] = []

    class StepClock(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends.append((time.perf_counter(), time.process_time()))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends.append((time.perf_counter(), time.process_time()))

    with tempfile.TemporaryDirectory() as out:
        config = grpo_args(
            out,
            seed=seed,
            use_cpu=device == "cpu",
            per_device_train_batch_size=batch,
            num_generations=min(batch, 4),
            max_completion_length=new_tokens,
            generation_kwargs={"min_new_tokens": new_tokens},
            beta=kl_coef,
            learning_rate=1e-4,
            max_steps=1 + runs,
        )
        model, tokenizer = grpo_model(folder)
        trainer = GRPOTrainer(model=model, reward_funcs=counted, args=config,
                              train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer,
                              callbacks=[StepClock()], peft_config=_lora_config(model) if lora else None)  # fmt: skip
        trainer.train()
        steps = list(itertools.pairwise(ends[1:]))  # from the end of the warm-up step on
        memory = _state_bytes(trainer)
    return {
        "seconds": [b[0] - a[0] for a, b in steps],
        "cpu_seconds": [b[1] - a[1] for a, b in steps],
        "tokens": tokens[1 : 1 + len(steps)],
        "memory": memory,
    }


def _lora_config(model: Any) -> Any:
    """The adapter of textenv's ``lora=True`` (``agents.trunk.LORA_DEFAULTS``, peft's default target modules)."""
    from peft import LoraConfig

    from agents.trunk import LORA_DEFAULTS

    fan_in_fan_out = getattr(model.config, "model_type", None) == "gpt2"
    return LoraConfig(**LORA_DEFAULTS, fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM")


def _state_bytes(trainer: Any) -> dict[str, int]:
    from benchmarks.memory import optimizer_bytes, parameter_bytes

    reference = getattr(trainer, "ref_model", None)
    return {
        "policy": parameter_bytes(trainer.model),
        "optimizer": optimizer_bytes(trainer.optimizer),
        "reference": parameter_bytes(reference) if reference is not None else 0,
    }
