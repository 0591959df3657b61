"""Checkpoints that resume a run exactly: weights, optimizer, envs (prompts, RNG, β), RNG states.

A checkpoint folder holds SB3's ``model.zip`` (policy, value head and optimizer state; safetensors-free but
never user-supplied: it is this run's own file), ``state.pkl`` (the sub-envs as pickled objects — textenv envs
survive pickling by contract — with the algorithm's last observation and the global RNG states) and
``checkpoint.json`` (tokens, rollouts, elapsed time). It is written to a temp folder and renamed into place,
so
a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.run_folder import POLICY_FOLDER  # the run's trained LM, where `textenv label --from-run` looks
from agents.trunk import standalone_model
from textenv.compat import rollout_state
from textenv_common.atomic import atomic_folder

__all__ = ["export_policy", "load_checkpoint_state", "save_checkpoint", "save_policy"]


def save_checkpoint(model: BaseAlgorithm, folder: Path, info: dict[str, Any]) -> None:
    """Write ``model`` and its envs to ``folder`` atomically."""
    env = model.get_env()
    assert env is not None
    with atomic_folder(folder, overwrite=True) as tmp:
        model.save(tmp / "model.zip")
        state = {
            "envs": list(env.envs),  # type: ignore[attr-defined]
            "rollout": rollout_state(model),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "random": random.getstate(),
            },
        }
        with (tmp / "state.pkl").open("wb") as fh:
            pickle.dump(state, fh)
        (tmp / "checkpoint.json").write_text(json.dumps({**info, "num_timesteps": model.num_timesteps}, indent=2))


def load_checkpoint_state(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pickled run state and the JSON info of a checkpoint written by :func:`save_checkpoint`."""
    with (folder / "state.pkl").open("rb") as fh:
        state = pickle.load(fh)  # this run's own file, written by save_checkpoint
    info = json.loads((folder / "checkpoint.json").read_text())
    return state, info


def restore_rng(rng: dict[str, Any]) -> None:
    """Put back the global RNG states saved in a checkpoint."""
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["random"])


def save_policy(model: BaseAlgorithm, folder: Path) -> None:
    """Write the policy's language model and tokenizer with ``save_pretrained`` (safetensors) to ``folder``.

    The folder loads like any Hugging Face model (``textenv.models.load_model_and_tokenizer(folder)``), so a
    finished run can be sampled from, e.g. by ``textenv label tasks --from-run RUN``; the value head, which
    only training needs, stays in the checkpoint. A LoRA policy is saved with its adapter merged into the
    weights.
    """
    policy: Any = model.policy  # an agents.policy.LMPolicy
    with atomic_folder(folder, overwrite=True) as tmp:
        standalone_model(policy.lm).save_pretrained(tmp)  # a LoRA adapter is merged into a copy
        policy.tokenizer.save_pretrained(tmp)


def export_policy(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Save the trained LM of a run's checkpoint as a plain model folder, with :func:`save_policy`.

    A run that finished already has it (``train`` writes it); this exports the latest checkpoint of any run.

    The checkpoint's ``model.zip`` holds the whole SB3 model (value head and optimizer too) and needs
    stable-baselines3 to read; the exported folder loads like any Hugging Face causal LM, e.g. as the env's
    ``model=`` or as the base of another fine-tune. The value head is left out.

    Args:
        run_dir: A run folder written by :func:`agents.train.train`.
        out_dir: Where to write; default ``<run_dir>/policy``. Written atomically (replaced if present).

    Returns:
        The folder written.

    Raises:
        FileNotFoundError: The run has no checkpoint.
    """
    from stable_baselines3 import A2C, PPO

    run = Path(run_dir)
    archive = run / "checkpoint" / "model.zip"
    if not archive.is_file():
        raise FileNotFoundError(f"{run} has no checkpoint/model.zip to export; train the run first.")
    algo = (_algo_of(run) or "ppo").lower()
    model = (A2C if algo == "a2c" else PPO).load(archive, device="cpu")
    out = Path(out_dir) if out_dir is not None else run / POLICY_FOLDER
    save_policy(model, out)
    return out


def _algo_of(run: Path) -> str | None:
    """The ``algo`` of a run's ``config.yaml``, or None without one."""
    import yaml

    try:
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    except OSError:
        return None
    algo = config.get("algo") if isinstance(config, dict) else None
    return str(algo) if algo else None
