"""Memory: the process's resident set, and the bytes of the training state that the memory target is set against.

The target of the performance issue: peak memory of a PPO run ≤ 1.2 × (policy + value head + optimizer state +
one reference copy). The budget is counted from the tensors themselves (parameters, and every tensor in the
optimizer's state after training), and the run's peak is the process's peak resident set (``VmHWM``, restarted
when the row starts) minus its resident set once the libraries are imported and before any model is built: the
interpreter, torch, stable-baselines3 and the transformers and textenv modules that load a model and build the
policy take about the same 390 MB whatever the model.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

__all__ = ["current_rss_mb", "optimizer_bytes", "parameter_bytes", "peak_rss_mb", "reset_peak_rss"]

MB = 1024 * 1024


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def current_rss_mb() -> float:
    """The resident set size now, in MiB (Linux; elsewhere the peak so far)."""
    rss = _status_mb("VmRSS")
    return peak_rss_mb() if rss is None else rss


def reset_peak_rss() -> bool:
    """Start the peak over from the current resident set (Linux ``clear_refs``); ``False`` where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """The peak resident set size of this process's image, in MiB.

    Linux's ``VmHWM``, not ``getrusage``'s ``ru_maxrss``: the latter also counts the parent's memory that a
    child had before ``exec`` (the benchmark's parent holds torch and the models), which would hide the peak of a
    row that uses less.
    """
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / MB if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB elsewhere


def parameter_bytes(module: Any) -> int:
    """Bytes of the module's parameters, each shared (tied) tensor once."""
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def optimizer_bytes(optimizer: Any) -> int:
    """Bytes of every tensor in the optimizer's per-parameter state (Adam: both moments and the step)."""
    import torch

    return sum(
        v.numel() * v.element_size()
        for state in optimizer.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor)
    )
