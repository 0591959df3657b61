"""The adapter over private internals: each gate closes on an old version or under TEXTENV_FAST_PATHS=0, and the
plain paths it leaves give the fast paths' results."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from packaging.version import Version

from textenv import compat
from textenv.errors import ConfigError, IncompatibleVersionsError
from textenv.kv_cache import WindowKVCache
from textenv.models import load_model_and_tokenizer
from textenv.packed import packed_linears
from textenv.sampler import position_ids


@pytest.fixture
def plain(monkeypatch):
    monkeypatch.setenv("TEXTENV_FAST_PATHS", "0")


@pytest.fixture
def old_versions(monkeypatch):
    """Pretend every library is older than any internal was tested on."""
    monkeypatch.setattr(compat, "installed_version", lambda package: Version("0.1"))
    for cached in (compat._dynamic_layer_class, compat._mkldnn_ops, compat._cache_name):
        cached.cache_clear()
    yield
    for cached in (compat._dynamic_layer_class, compat._mkldnn_ops, compat._cache_name):
        cached.cache_clear()


@pytest.mark.fast_path
def test_every_gate_is_open_on_the_pinned_set():
    assert compat.fast_paths()
    assert compat.dynamic_layer() is not None
    assert compat.mkldnn_linear() is not None
    assert compat.fused_reference()


def test_fast_paths_off_closes_every_gate(plain, tiny_lm_dir):
    model, _ = load_model_and_tokenizer(tiny_lm_dir)
    assert compat.attn_implementation(model.config) is None
    assert compat.dynamic_layer() is None
    assert compat.mkldnn_linear() is None
    assert not compat.fused_reference()


def test_an_old_library_closes_the_version_gates(old_versions):
    assert compat.dynamic_layer() is None
    assert compat.mkldnn_linear() is None
    assert compat.cache_kwargs("c") == {"past_key_values": "c"}
    assert compat.rollout_state(object()) is None


@pytest.mark.fast_path
def test_packed_weights_only_switch(monkeypatch):
    monkeypatch.setenv("TEXTENV_PACKED_WEIGHTS", "off")
    assert compat.mkldnn_linear() is None
    assert compat.dynamic_layer() is not None  # the other paths stay


def _windows(rng, pad: int, width: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((3, width), pad, dtype=torch.long)
    mask = torch.zeros((3, width), dtype=torch.long)
    for i, n in enumerate((2, 3, 4)):
        ids[i, width - n :] = torch.as_tensor(rng.integers(3, 60, size=n))
        mask[i, width - n :] = 1
    return ids, mask


def _shift(ids: torch.Tensor, mask: torch.Tensor, token: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.cat([ids[:, 1:], torch.full((len(ids), 1), token)], 1)
    return ids, torch.cat([mask[:, 1:], torch.ones((len(mask), 1), dtype=mask.dtype)], 1)


@pytest.mark.parametrize("fast", [pytest.param(True, marks=pytest.mark.fast_path), False])
def test_the_window_cache_gives_full_passes_results_with_or_without_its_fast_path(monkeypatch, tiny_lm_dir, fast):
    if not fast:
        monkeypatch.setenv("TEXTENV_FAST_PATHS", "0")
    model, tok = load_model_and_tokenizer(tiny_lm_dir)
    ids, mask = _windows(np.random.default_rng(0), tok.pad_token_id)
    cache = WindowKVCache()
    for token in (5, 9, 11):
        logits, hidden = cache(model, ids, mask)
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True)
        torch.testing.assert_close(logits, out.logits[:, -1].float(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hidden, out.hidden_states[-1][:, -1], atol=1e-5, rtol=1e-5)
        ids, mask = _shift(ids, mask, token)
    assert (cache.n_incremental > 0) is fast  # the plain path recomputes every row of every step
    assert cache.n_recomputed == (3 if fast else 9)


def test_packed_linears_leaves_the_layers_alone_when_off(plain, tiny_lm_dir):
    model, _ = load_model_and_tokenizer(tiny_lm_dir)
    with torch.no_grad(), packed_linears(model):
        assert not any("forward" in vars(m) for m in model.modules())


def test_output_cache_and_cache_kwargs_round_trip_through_a_forward(tiny_lm_dir):
    model, _ = load_model_and_tokenizer(tiny_lm_dir)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        first = model(input_ids=ids, use_cache=True)
        cache = compat.output_cache(first)
        step = model(input_ids=torch.tensor([[8]]), use_cache=True, **compat.cache_kwargs(cache))
        full = model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # fast: every forward runs in the other tests
def test_our_forwards_trigger_no_deprecation_warning(tmp_path):
    """A whole tiny training run in a fresh process (transformers warns once per process) prints no deprecation."""
    code = (
        "import sys, warnings; warnings.simplefilter('error', FutureWarning);"
        "warnings.simplefilter('error', DeprecationWarning);"
        "from agents.cli import main;"
        f"sys.exit(main(['train', '--preset', 'tiny', '--budget-tokens', '32', '--out', {str(tmp_path / 'run')!r}]))"
    )
    env = {**os.environ, "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deprecated" not in (done.stdout + done.stderr).lower(), done.stderr[-3000:]


def test_peft_flags_of_a_lora_model_and_of_its_merged_copy(tiny_lm_dir):
    pytest.importorskip("peft")
    from agents.trunk import build_policy_lm, standalone_model

    lm, _, _ = build_policy_lm(str(tiny_lm_dir), lora={"r": 2, "target_modules": ["c_attn"]}, share=False)
    assert compat.has_peft_adapter(lm)
    merged = standalone_model(lm)
    assert not compat.has_peft_adapter(merged)
    assert "peft_config" not in vars(merged)
    assert compat.has_peft_adapter(lm)  # the policy's own module is untouched


def test_a_lora_setup_the_installed_versions_cannot_serve_names_both_and_the_fix(monkeypatch, tiny_lm_dir):
    pytest.importorskip("peft")
    from transformers.integrations import peft as hf_peft

    from agents.trunk import build_policy_lm

    monkeypatch.setattr(hf_peft, "MIN_PEFT_VERSION", "99.0.0")
    with pytest.raises(IncompatibleVersionsError, match=r"transformers \d.*peft \d.*peft >= 99\.0\.0.*lock\.txt"):
        build_policy_lm(str(tiny_lm_dir), lora={"r": 2, "target_modules": ["c_attn"]}, share=False)


def test_transformers_refusal_from_add_adapter_is_translated():
    refusal = ValueError("The version of PEFT you are using is not compatible, please use a version >= 0.22.0")
    error = compat.lora_error(refusal)
    assert isinstance(error, IncompatibleVersionsError)
    assert "0.22.0" in str(error)
    assert compat.lora_error(ValueError("r must be positive")) is None
    assert not issubclass(IncompatibleVersionsError, ConfigError)


def test_rollout_state_round_trips_and_refuses_what_it_cannot_restore():
    class Algo:
        def __init__(self) -> None:
            self._last_obs: dict | None = {"input_ids": np.zeros((1, 2))}
            self._last_episode_starts: np.ndarray | None = np.array([True])

    state = compat.rollout_state(Algo())
    assert state is not None
    target = Algo()
    target._last_obs, target._last_episode_starts = None, None
    assert compat.set_rollout_state(target, state)
    assert target._last_obs is state["last_obs"]
    assert not compat.set_rollout_state(object(), state)
    assert not compat.set_rollout_state(target, None)
