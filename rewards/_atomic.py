"""Atomic writes for the reward package: a file or a folder appears complete or not at all.

``rewards`` does not import ``textenv``, so it keeps its own small helpers. Each writes under a hidden
temporary name next to the target (same file system, so ``os.replace``/``os.rename`` is atomic) and renames
it into place only when the write succeeded; a failure or a crash leaves at most a ``.<name>.partial-*``
entry, which nothing reads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_file", "atomic_folder"]


def _partial_name(final: Path) -> Path:
    return final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def atomic_folder(final: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Write a folder under a temporary name and rename it to ``final`` when the block succeeds.

    Args:
        final: The folder to create.
        overwrite: Replace an existing ``final``. The old folder is moved aside first and deleted only
            after the new one is in place, so an interruption never leaves neither.

    Yields:
        The empty temporary folder to write into.

    Raises:
        FileExistsError: If ``final`` exists and ``overwrite`` is false (checked before and after the block).
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; choose another folder or allow overwriting it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial_name(final)
    tmp.mkdir()
    old: Path | None = None
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} was created by someone else while this one was written")
            old = _partial_name(final)
            os.rename(final, old)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a file under a temporary name and move it to ``final`` (replacing it) when the block succeeds.

    Yields:
        The temporary path to write; the caller opens and closes it inside the block.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
