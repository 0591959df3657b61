"""Atomic writes: a file or a folder appears complete, or not at all.

Every writer here works the same way. It writes under a hidden temporary name next to the target
(``.<name>.partial-<random>``: the same folder, so the same file system, so the rename is atomic), flushes
what it wrote to the disk (``fsync`` of each file, then of each folder), renames it into place, and
``fsync``\\ s the parent folder so that the rename itself survives a power cut. If the block raises, the
temporary file or folder is removed and the target is left as it was; a process killed mid-write leaves at
most a ``.<name>.partial-*`` entry, which nothing reads.

Whether an existing target may be replaced is always the caller's explicit choice (``overwrite``, keyword
only, no default). With ``overwrite=False`` an existing target raises :class:`TargetExistsError`, before the
block runs and again at the rename, so a target that another process created meanwhile is never clobbered.
A cache filled by several processes at once catches that error and keeps the first complete copy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TargetExistsError", "atomic_file", "atomic_folder", "write_text_atomic"]


class TargetExistsError(FileExistsError):
    """The target of an atomic write exists and the caller did not allow replacing it (``overwrite=False``).

    Attributes:
        path: The target that exists.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            errno.EEXIST,
            f"{path} already exists; choose another path, remove it, or pass overwrite=True to replace it",
            str(path),
        )

    def __str__(self) -> str:
        return str(self.args[1])


def _temporary_name(final: Path, kind: str) -> Path:
    return final.parent / f".{final.name}.{kind}-{uuid.uuid4().hex[:12]}"


def _fsync_path(path: Path, *, folder: bool) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk."""
    if folder and not hasattr(os, "O_DIRECTORY"):
        return  # Windows cannot open a folder; its renames are durable without it
    flags = os.O_RDONLY | (os.O_DIRECTORY if folder else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` (and ``root`` itself) to the disk."""
    for parent, _, files in os.walk(root):  # followlinks=False: a link to a folder is not entered
        for name in files:
            file = Path(parent, name)
            if not file.is_symlink():
                _fsync_path(file, folder=False)
        _fsync_path(Path(parent), folder=True)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Write a file under a temporary name and rename it to ``final`` when the block succeeds.

    The block creates the file at the yielded path (``open``, ``savefig``, ``save_file``, ...) and closes it
    before the block ends. The parent folder is created if needed.

    Args:
        final: The file to write.
        overwrite: Replace ``final`` if it exists. If false, an existing ``final`` raises
            :class:`TargetExistsError`; the check at the rename is atomic (a hard link that refuses to clobber).

    Yields:
        The temporary path to write to; it does not exist yet.

    Raises:
        TargetExistsError: ``final`` exists and ``overwrite`` is false.
        FileNotFoundError: The block did not create the file.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_file(folder / "a.txt", overwrite=False) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> (folder / "a.txt").read_text()
        'hello'
        >>> shutil.rmtree(folder)
    """
    final = Path(final)
    if not overwrite and final.exists():
        raise TargetExistsError(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(final, "partial")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"The atomic write of {final} produced no file at {tmp}; write to the yielded path")
        _fsync_path(tmp, folder=False)
        if overwrite:
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)  # fails if final exists, unlike a rename
            except FileExistsError:
                raise TargetExistsError(final) from None
        _fsync_path(final.parent, folder=True)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(
    path: str | os.PathLike[str], text: str, *, overwrite: bool, encoding: str = "utf-8", newline: str | None = None
) -> None:
    """Write ``text`` to the file ``path`` atomically (see :func:`atomic_file`).

    Args:
        path: The file to write.
        text: Its whole content.
        overwrite: Replace ``path`` if it exists; if false, an existing ``path`` raises :class:`TargetExistsError`.
        encoding: The text encoding.
        newline: As :func:`open`'s ``newline`` (``None`` writes ``\\n`` as the platform's line separator).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_text_atomic(folder / "a.txt", "one", overwrite=False)
        >>> write_text_atomic(folder / "a.txt", "two", overwrite=True)
        >>> (folder / "a.txt").read_text()
        'two'
        >>> shutil.rmtree(folder)
    """
    with atomic_file(path, overwrite=overwrite) as tmp, tmp.open("w", encoding=encoding, newline=newline) as fh:
        fh.write(text)


@contextlib.contextmanager
def atomic_folder(final: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Write a folder under a temporary name and rename it to ``final`` when the block succeeds.

    The temporary folder is created with ``mkdir`` (so it has the umask's permissions, not ``mkdtemp``'s
    owner-only ones); the parent folder is created if needed.

    Args:
        final: The folder to write.
        overwrite: Replace ``final`` if it exists. The old folder is renamed aside first and deleted only once
            the new one is in place; if the second rename fails, the old one is put back. If false, an
            existing ``final`` raises :class:`TargetExistsError` (before the block, and at the rename if
            another process created it meanwhile).

    Yields:
        The empty temporary folder to write into.

    Raises:
        TargetExistsError: ``final`` exists and ``overwrite`` is false.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_folder(folder / "model", overwrite=False) as tmp:
        ...     _ = (tmp / "config.json").write_text("{}")
        >>> sorted(p.name for p in (folder / "model").iterdir())
        ['config.json']
        >>> shutil.rmtree(folder)
    """
    final = Path(final)
    if not overwrite and final.exists():
        raise TargetExistsError(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(final, "partial")
    tmp.mkdir()
    old: Path | None = None
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            if not overwrite:
                raise TargetExistsError(final)
            old = _temporary_name(final, "old")
            os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if old is not None:
                os.rename(old, final)
                old = None
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and not overwrite:
                raise TargetExistsError(final) from None  # another process renamed its folder in first
            raise
        _fsync_path(final.parent, folder=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
