"""Run the ``textenv`` command line, stop dead at a chosen point, tell the parent, and wait to be SIGKILLed.

``python sigkill_child.py FD POINT textenv-args...`` runs ``textenv textenv-args...`` in this process. When it
reaches POINT it writes ``ready`` to file descriptor FD and blocks forever, so the test that started it kills it
at a known moment, with no guessing at timing. POINT is one of:

- ``rl:<algo>:<tokens>``: an RL run of ``<algo>`` (``ppo`` or ``a2c``) has generated ``<tokens>`` tokens, i.e.
  right after the env step that reached that count (the middle of a rollout, when it is not a multiple of the
  rollout size);
- ``reward_model``: the reward model's training computes its first batch loss (the stage has started and
  saved nothing yet).

torch runs on one thread, as in the test process (``tests/conftest.py``), so the numbers computed here match
those of a run in the test process exactly.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import torch

torch.set_num_threads(1)


def _stop(fd: int) -> None:
    os.write(fd, b"ready\n")
    threading.Event().wait()  # until SIGKILL: nothing after this point runs, no finally, no exit handler


def _stop_rl_run(fd: int, algo: str, tokens: int) -> None:
    from agents.callbacks import RLHFMetricsCallback

    on_step = RLHFMetricsCallback._on_step

    def stopping_on_step(self: RLHFMetricsCallback) -> bool:
        keep_going = on_step(self)
        if type(self.model).__name__.lower() == algo and self.num_timesteps == tokens:
            _stop(fd)
        return keep_going

    RLHFMetricsCallback._on_step = stopping_on_step  # type: ignore[method-assign]


def _stop_reward_model_training(fd: int) -> None:
    from rewards.training_loop import reward_trainer_class

    trainer_class = reward_trainer_class()  # built once, so the Trainer that trains is this class

    def stopping_loss(self: Any, *args: Any, **kwargs: Any) -> Any:
        _stop(fd)  # compute_loss runs for training batches only; held-out ones go through prediction_step

    trainer_class.compute_loss = stopping_loss


def main(argv: list[str]) -> int:
    fd, point, args = int(argv[0]), argv[1], argv[2:]
    kind, *rest = point.split(":")
    if kind == "rl":
        _stop_rl_run(fd, rest[0], int(rest[1]))
    elif kind == "reward_model":
        _stop_reward_model_training(fd)
    else:
        raise SystemExit(f"unknown stop point {point!r}")
    from agents.cli import main as textenv

    return textenv(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
