"""textenv: a language model's context window as a Gymnasium environment.

``import textenv`` registers the env ids (``textenv/TextGen-v0``, ``textenv/Sentiment-v0``,
``textenv/Summarize-v0``, ``textenv/Toy-v0``) with Gymnasium and stays light: torch and transformers load only
when an env is built.
"""

from __future__ import annotations

from typing import Any

from textenv.errors import TextEnvError
from textenv.registration import env_ids, make, register_envs

__all__ = ["TextEnvError", "TextGenEnv", "__version__", "env_ids", "make"]
__version__ = "0.1.0"

register_envs()


def __getattr__(name: str) -> Any:
    # TextGenEnv pulls in torch and transformers, so it loads on first use, not at `import textenv`.
    if name == "TextGenEnv":
        from textenv.env import TextGenEnv

        return TextGenEnv
    raise AttributeError(f"module 'textenv' has no attribute {name!r}")
