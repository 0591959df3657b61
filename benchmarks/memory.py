"""Memory: the process's resident set, and the bytes of the training state that the memory target is set against.

The target of the performance issue: peak memory of a PPO run ≤ 1.2 × (policy + value head + optimizer state +
one reference copy). The budget is counted from the tensors themselves (parameters, and every tensor in the
optimizer's state after training), and the run's peak is the process's peak resident set (``ru_maxrss``) minus
its resident set once the libraries are imported and before any model is built: the interpreter, torch,
transformers and stable-baselines3 take about the same few hundred MB whatever the model.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

__all__ = ["current_rss_mb", "optimizer_bytes", "parameter_bytes", "peak_rss_mb"]

MB = 1024 * 1024


def current_rss_mb() -> float:
    """The resident set size now, in MiB (from ``/proc/self/status``; the peak so far elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


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
