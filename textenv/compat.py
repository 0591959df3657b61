"""The one place where textenv reaches into private internals of transformers, peft, torch and stable-baselines3.

Every fast path that needs such an internal asks this module first. Each entry is gated: it holds only where
the installed library is at least the version the internal was tested on *and* the internal is really there
with the expected shape (checked once, by looking, not by calling it). Where the gate is closed, the caller
takes the plain path, which uses public APIs only and gives the same results, more slowly:

==========================  =============================================  ==========================================
entry                       internal                                       plain path when the gate is closed
==========================  =============================================  ==========================================
:func:`dynamic_layer`       transformers' ``cache_utils.DynamicLayer`` and  every rollout step recomputes each
                            ``Cache(layers=...)`` (a view-backed KV cache)  window from scratch (no KV cache reuse)
:func:`attn_implementation` ``config._attn_implementation``                the 2-D attention mask transformers builds
:func:`mkldnn_linear`       ``torch.ops.mkldnn._reorder_linear_weight`` /  ``nn.Linear``'s own forward
                            ``_linear_pointwise``
:func:`has_peft_adapter`    transformers' ``_hf_peft_config_loaded``       ``peft_config`` present on the model
:func:`drop_peft_flags`     the same flag, set on a merged copy            the copy keeps ``peft_config`` removed only
:func:`fused_reference`     (switch only: policy and π_ref in one forward)  the env scores π_ref with its own pass
:func:`rollout_state`       SB3's ``_last_obs`` / ``_last_episode_starts``  a resumed run starts new episodes
==========================  =============================================  ==========================================

``TEXTENV_FAST_PATHS=0`` closes every gate at once (``TEXTENV_PACKED_WEIGHTS=0`` only the oneDNN one): the test
suite's ``plain`` lane runs that way, so the fallbacks stay correct. The public API renames of transformers
(``past_key_values`` → ``cache`` in 5.24) are handled here too (:func:`cache_kwargs`, :func:`output_cache`), so
no call of ours triggers a deprecation warning.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from typing import Any

from packaging.version import Version

from textenv.errors import IncompatibleVersionsError

__all__ = [
    "attn_implementation",
    "cache_kwargs",
    "check_lora_support",
    "drop_peft_flags",
    "dynamic_layer",
    "fast_paths",
    "fused_reference",
    "has_peft_adapter",
    "installed_version",
    "lora_error",
    "mkldnn_linear",
    "output_cache",
    "rollout_state",
    "set_rollout_state",
]

_OFF = {"0", "false", "no", "off"}

# The lowest versions on which each internal was tested (the gates' lower bounds).
_TRANSFORMERS_CACHE_LAYERS = Version("4.56")  # Cache(layers=...) and DynamicLayer
_TRANSFORMERS_CACHE_RENAME = Version("5.24")  # ``past_key_values`` → ``cache``
_TORCH_MKLDNN_LINEAR = Version("2.4")
_SB3_ROLLOUT_STATE = Version("2.0")


def _switched_off(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() in _OFF


def fast_paths() -> bool:
    """Whether the fast paths are allowed at all (``TEXTENV_FAST_PATHS=0`` turns every one off)."""
    return not _switched_off("TEXTENV_FAST_PATHS")


@functools.cache
def installed_version(package: str) -> Version | None:
    """The installed version of a distribution (local tags such as ``+cpu`` dropped), or ``None``."""
    try:
        return Version(Version(importlib.metadata.version(package)).base_version)
    except importlib.metadata.PackageNotFoundError:
        return None


def _at_least(package: str, floor: Version) -> bool:
    found = installed_version(package)
    return found is not None and found >= floor


# transformers ---------------------------------------------------------------------------------------------------


@functools.cache
def _dynamic_layer_class() -> Any:
    if not _at_least("transformers", _TRANSFORMERS_CACHE_LAYERS):
        return None
    try:
        from transformers.cache_utils import Cache, DynamicLayer
    except ImportError:
        return None
    import inspect

    if "layers" not in inspect.signature(Cache.__init__).parameters or not hasattr(DynamicLayer, "update"):
        return None
    return DynamicLayer


def dynamic_layer() -> Any:
    """transformers' ``DynamicLayer`` (a KV cache layer to subclass with a view-backed one), or ``None``.

    ``None`` where fast paths are off or the installed transformers has no layer-based ``Cache``.
    """
    return _dynamic_layer_class() if fast_paths() else None


def attn_implementation(config: Any) -> str | None:
    """The attention implementation a loaded model runs (``"sdpa"``, ``"eager"``, ...), or ``None`` if unknown."""
    if not fast_paths():
        return None
    value = getattr(config, "_attn_implementation", None)
    return value if isinstance(value, str) else None


@functools.cache
def _cache_name() -> str:
    return "cache" if _at_least("transformers", _TRANSFORMERS_CACHE_RENAME) else "past_key_values"


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """The keyword that hands a KV cache to a forward: ``cache=`` from transformers 5.24, else ``past_key_values=``."""
    return {_cache_name(): cache}


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned (``output.cache`` from transformers 5.24, ``output.past_key_values`` before)."""
    return getattr(output, _cache_name())


# peft -----------------------------------------------------------------------------------------------------------


def has_peft_adapter(model: Any) -> bool:
    """Whether a transformers model carries a peft adapter (added with ``model.add_adapter``)."""
    flag = getattr(type(model), "_hf_peft_config_loaded", None)
    if isinstance(flag, bool):  # transformers' PeftAdapterMixin keeps this flag
        return bool(getattr(model, "_hf_peft_config_loaded", False))
    return bool(getattr(model, "peft_config", None))


def drop_peft_flags(model: Any) -> None:
    """Make a copy whose adapter layers were merged and removed look like a model that never had an adapter."""
    if isinstance(getattr(type(model), "_hf_peft_config_loaded", None), bool):
        model._hf_peft_config_loaded = False
    if "peft_config" in vars(model):
        del model.peft_config


def check_lora_support() -> None:
    """Raise :class:`IncompatibleVersionsError` where the installed transformers refuses the installed peft.

    transformers states the lowest peft its adapter API accepts (``integrations.peft.MIN_PEFT_VERSION``); where it
    does not, a ``ValueError`` from ``add_adapter`` is translated by :func:`lora_error` instead.
    """
    peft_version = installed_version("peft")
    try:
        from transformers.integrations import peft as hf_peft
    except ImportError:
        return
    needed = getattr(hf_peft, "MIN_PEFT_VERSION", None)
    if peft_version is None or not isinstance(needed, str):
        return
    if peft_version < Version(needed):
        raise _lora_versions_error(f"it needs peft >= {needed}")


def lora_error(exc: ValueError) -> IncompatibleVersionsError | None:
    """The typed error for transformers' refusal of the installed peft, if ``exc`` is that refusal."""
    text = str(exc)
    return _lora_versions_error(text) if "version of PEFT" in text else None


def _lora_versions_error(reason: str) -> IncompatibleVersionsError:
    transformers_version, peft_version = installed_version("transformers"), installed_version("peft")
    return IncompatibleVersionsError(
        f"LoRA cannot run with transformers {transformers_version} and peft {peft_version}: {reason}. Install the "
        "tested pair with `pip install -c requirements/lock.txt transformers peft` (from a textenv checkout), or "
        "upgrade peft if a compatible release exists; textenv's pyproject.toml lists the known breaks."
    )


# torch ----------------------------------------------------------------------------------------------------------


@functools.cache
def _mkldnn_ops() -> tuple[Any, Any] | None:
    import torch

    if not _at_least("torch", _TORCH_MKLDNN_LINEAR) or not torch.backends.mkldnn.is_available():
        return None
    ops = torch.ops.mkldnn
    try:
        reorder, linear = ops._reorder_linear_weight, ops._linear_pointwise
    except (AttributeError, RuntimeError):
        return None
    return reorder, linear


def mkldnn_linear() -> tuple[Any, Any] | None:
    """oneDNN's ``(reorder_linear_weight, linear_pointwise)`` ops for prepacked CPU linears, or ``None``.

    ``None`` where fast paths or packed weights are off (``TEXTENV_PACKED_WEIGHTS=0``) or this torch lacks them.
    """
    if not fast_paths() or _switched_off("TEXTENV_PACKED_WEIGHTS"):
        return None
    return _mkldnn_ops()


def fused_reference() -> bool:
    """Whether a policy may score π_ref in its own rollout forward (``TEXTENV_FUSED_REFERENCE=0`` turns it off)."""
    return fast_paths() and not _switched_off("TEXTENV_FUSED_REFERENCE")


# stable-baselines3 ----------------------------------------------------------------------------------------------


def _sb3_rollout_state_ok(model: Any) -> bool:
    return _at_least("stable_baselines3", _SB3_ROLLOUT_STATE) and all(
        hasattr(model, name) for name in ("_last_obs", "_last_episode_starts")
    )


def rollout_state(model: Any) -> dict[str, Any] | None:
    """Where an SB3 algorithm's collection stands (its last observations and episode starts), or ``None``."""
    if not _sb3_rollout_state_ok(model):
        return None
    return {"last_obs": model._last_obs, "last_episode_starts": model._last_episode_starts}


def set_rollout_state(model: Any, state: dict[str, Any] | None) -> bool:
    """Restore :func:`rollout_state` into ``model``; ``False`` (the run starts new episodes) where it cannot."""
    if state is None or state.get("last_obs") is None or not _sb3_rollout_state_ok(model):
        return False
    model._last_obs = state["last_obs"]
    model._last_episode_starts = state["last_episode_starts"]
    return True
