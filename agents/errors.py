"""The typed errors of the agents package, in textenv's hierarchy (so the CLI prints them as one-line errors)."""

from __future__ import annotations

from textenv.errors import ConfigError, TextEnvError

__all__ = ["ConfigError", "DemonstrationError", "PipelineError"]


class DemonstrationError(TextEnvError, ValueError):
    """A demonstrations file for supervised fine-tuning is missing, empty, or has a malformed record."""


class PipelineError(TextEnvError, RuntimeError):
    """A pipeline stage cannot run: an input it needs is missing, or an optional part is not installed."""
