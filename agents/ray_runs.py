"""A comparison's runs as Ray tasks: each (algorithm, seed) trains on a worker of a Ray cluster.

:func:`run_on_ray` submits one task per run with the resources of :class:`RayOptions` and returns the runs'
results in the order given, each with its run folder in its place under the comparison folder, as a sequential
comparison would have written it. Ray is the only cluster layer: it schedules the tasks, and retries a task whose
worker died (``max_retries``).

Where run folders live while they train:

- with ``storage`` (a folder every worker can reach, e.g. a shared filesystem), a run trains in
  ``<storage>/<algo>/seed<seed>``. A retried task resumes from that folder's last checkpoint, whichever node it
  lands on, and the driver copies the finished folder into the comparison folder;
- without it, a run trains in a folder of the worker's node that is named after the comparison and the run, and
  the task sends the finished folder back to the driver (as a ``tar`` archive). A task retried on the same node
  resumes from the checkpoint there; on another node it starts over. On one machine (a local cluster) the
  comparison folder itself is used, so nothing is copied at all.

A run's numbers do not depend on where it trained: training is seeded and a resumed run equals an uninterrupted
one, so the report equals that of the sequential comparison with the same seeds.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from textenv.errors import ConfigError
from textenv_common.atomic import atomic_folder
from textenv_common.checks import check_int

__all__ = ["RayOptions", "run_on_ray"]


@dataclass(frozen=True)
class RayOptions:
    """Where and with what resources a comparison's runs train on Ray.

    Attributes:
        address: The cluster: ``None`` (``RAY_ADDRESS``, else a new local cluster), ``"auto"`` (the cluster this
            machine joined with ``ray start``), ``"local"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"``.
        storage: A folder every worker can reach, where run folders train (see the module docstring); ``None``:
            each worker's own disk, the finished folders sent back to the driver.
        num_cpus: CPUs a run reserves.
        num_gpus: GPUs a run reserves (a run with a GPU trains on it when its config says ``device: auto``).
        max_retries: How often a run whose worker died is started again (from its checkpoint).
    """

    address: str | None = None
    storage: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"ray {name} must be a number ≥ 0; got {value!r}.")
        if self.num_cpus == 0 and self.num_gpus == 0:
            raise ConfigError("A run needs some resource: give ray num_cpus > 0 or num_gpus > 0.")
        check_int("ray max_retries", self.max_retries, 0, error=ConfigError)


def run_on_ray(
    plan: Sequence[tuple[TrainConfig, Path]],
    options: RayOptions,
    *,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Train every ``(config, folder)`` of ``plan`` as a Ray task; their :class:`~agents.train.RunResult` in order.

    Each run resumes from a checkpoint it finds in its training folder. ``on_done(i, result)`` is called on the
    driver as each run finishes, in the order they finish.

    Raises:
        MissingExtraError: Ray is not installed.
        RayAddressError: No cluster answers at ``options.address``.
        Exception: The first error a run raised (after Ray's retries of lost workers).
    """
    from textenv.ray_vec_env import connect

    ray = _ray()
    connect(options.address, **({} if options.address else {"include_dashboard": False}))
    task = ray.remote(_train_run).options(
        num_cpus=options.num_cpus, num_gpus=options.num_gpus, max_retries=options.max_retries
    )
    driver = socket.gethostname()
    pending = {}
    for i, (config, folder) in enumerate(plan):
        where = _training_folder(folder, config, options.storage)
        ref = task.remote(config.to_dict(), str(where), driver, options.storage is not None)
        pending[ref] = i
    results: list[Any] = [None] * len(plan)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        result, archive = ray.get(done[0])
        folder = plan[i][1]
        _place(folder, Path(result.out_dir), archive)
        result.out_dir = folder
        results[i] = result
        if on_done is not None:
            on_done(i, result)
    return results


def _ray() -> Any:
    from textenv.ray_vec_env import _import_ray

    return _import_ray()


def _training_folder(folder: Path, config: TrainConfig, storage: str | None) -> Path:
    """Where the run of ``folder`` trains (see the module docstring)."""
    if storage is not None:
        return Path(storage).expanduser().resolve() / config.algo / f"seed{config.seed}"
    return folder.resolve()


def _train_run(config: dict[str, Any], where: str, driver: str, shared: bool) -> tuple[Any, bytes | None]:
    """The task: train in ``where`` (resuming from its checkpoint), and send the folder back where the driver
    cannot read it (no shared storage, another node)."""
    from agents.train import train

    folder = Path(where)
    remote = not shared and socket.gethostname() != driver
    if remote:  # a folder of this node named after the run, so that a retry on this node resumes from it
        digest = hashlib.sha256(f"{driver}:{where}".encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / "textenv-ray-runs" / digest
    folder.mkdir(parents=True, exist_ok=True)
    resume = (folder / "checkpoint" / "model.zip").exists()
    result = train(TrainConfig(**config), folder, resume=resume, progress=False)
    result.out_dir = folder
    return result, _pack(folder) if remote else None


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def _place(folder: Path, trained_in: Path, archive: bytes | None) -> None:
    """Put a finished run's folder at ``folder``: unpacked from ``archive``, or copied from a storage path."""
    if archive is None and trained_in.resolve() == folder.resolve():
        return  # it trained in place
    with atomic_folder(folder, overwrite=True) as tmp:
        if archive is not None:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
        else:
            shutil.copytree(trained_in, tmp, dirs_exist_ok=True)
