"""Atomic file and folder writes: all or nothing, fsynced, never replacing a target unless told to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from textenv_common.atomic import TargetExistsError, atomic_file, atomic_folder, write_text_atomic


class BoomError(RuntimeError):
    """Stands for anything that goes wrong inside a write block."""


def _fail_writing_file(target: Path) -> None:
    with atomic_file(target, overwrite=True) as tmp:
        tmp.write_text("half")
        raise BoomError


def _fail_writing_folder(target: Path) -> None:
    with atomic_folder(target, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("half")
        raise BoomError


def _race_file(target: Path) -> None:
    """Write ``target`` while another process creates it first."""
    with atomic_file(target, overwrite=False) as tmp:
        tmp.write_text("mine")
        target.write_text("theirs")


def _race_folder(target: Path) -> None:
    """Write ``target`` while another process renames its own copy into place first."""
    with atomic_folder(target, overwrite=False) as tmp:
        (tmp / "a.txt").write_text("mine")
        target.mkdir()
        (target / "a.txt").write_text("theirs")


def _fill_folder(target: Path) -> None:
    with atomic_folder(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")


def _write_nothing(target: Path) -> None:
    with atomic_file(target, overwrite=False):
        pass


def _must_not_run(target: Path) -> None:
    with atomic_folder(target, overwrite=False):
        pytest.fail("the block must not run")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls to ``os.fsync`` (and still make them)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


# ---------------------------------------------------------------------------------------------- files


def test_file_is_written_and_fsynced(tmp_path: Path, fsyncs: list[int]) -> None:
    target = tmp_path / "sub" / "a.txt"
    with atomic_file(target, overwrite=False) as tmp:
        assert tmp.parent == target.parent
        assert not target.exists()
        tmp.write_text("hello")
    assert target.read_text() == "hello"
    assert _names(target.parent) == ["a.txt"]
    assert len(fsyncs) == 2  # the file, then its folder


def test_a_crash_in_the_block_leaves_the_file_untouched_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(BoomError):
        _fail_writing_file(target)
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["a.txt"]


def test_file_overwrite_false_raises_and_keeps_the_target(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(TargetExistsError, match=r"a\.txt already exists.*overwrite=True") as info:
        write_text_atomic(target, "new", overwrite=False)
    assert isinstance(info.value, FileExistsError)
    assert info.value.path == target
    assert target.read_text() == "old"


def test_file_created_by_someone_else_during_the_block_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    with pytest.raises(TargetExistsError):
        _race_file(target)
    assert target.read_text() == "theirs"
    assert _names(tmp_path) == ["a.txt"]


def test_file_overwrite_true_replaces(tmp_path: Path, fsyncs: list[int]) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    write_text_atomic(target, "new", overwrite=True)
    assert target.read_text() == "new"
    assert _names(tmp_path) == ["a.txt"]
    assert len(fsyncs) == 2


def test_file_keeps_the_umask_permissions(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "atomic.txt", "x", overwrite=False)
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode


def test_a_block_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="write to the yielded path"):
        _write_nothing(tmp_path / "a.txt")
    assert _names(tmp_path) == []


# ---------------------------------------------------------------------------------------------- folders


def test_folder_is_written_and_every_entry_fsynced(tmp_path: Path, fsyncs: list[int]) -> None:
    target = tmp_path / "model"
    with atomic_folder(target, overwrite=False) as tmp:
        assert tmp.parent == tmp_path
        (tmp / "a.txt").write_text("a")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("b")
    assert (target / "a.txt").read_text() == "a"
    assert (target / "sub" / "b.txt").read_text() == "b"
    assert _names(tmp_path) == ["model"]
    assert len(fsyncs) == 5  # two files, two folders, and the parent after the rename


def test_a_crash_in_the_block_leaves_the_folder_untouched_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "a.txt").write_text("old")
    with pytest.raises(BoomError):
        _fail_writing_folder(target)
    assert (target / "a.txt").read_text() == "old"
    assert _names(tmp_path) == ["model"]
    assert _names(target) == ["a.txt"]


def test_folder_overwrite_false_raises_before_the_block(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    with pytest.raises(TargetExistsError, match=r"model already exists; choose another path"):
        _must_not_run(target)
    assert _names(tmp_path) == ["model"]


def test_folder_created_by_someone_else_during_the_block_is_kept(tmp_path: Path) -> None:
    # The race of two processes filling the same cache: the second one gets the error, the first one's stays.
    target = tmp_path / "model"
    with pytest.raises(TargetExistsError):
        _race_folder(target)
    assert (target / "a.txt").read_text() == "theirs"
    assert _names(tmp_path) == ["model"]


def test_folder_overwrite_true_replaces_and_removes_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_folder(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _names(target) == ["new.txt"]
    assert _names(tmp_path) == ["model"]


def test_a_failed_final_rename_puts_the_old_folder_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real = os.rename

    def failing(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        if Path(src).name.startswith(".model.partial-"):
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError, match="disk full"):
        _fill_folder(target)
    assert _names(target) == ["old.txt"]
    assert _names(tmp_path) == ["model"]
