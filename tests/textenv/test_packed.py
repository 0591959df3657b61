"""Prepacked inference weights: same results as the plain layers, repacked after any change, only where safe."""

from __future__ import annotations

import copy
import gc
import pickle

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from textenv import packed
from textenv.models import load_model_and_tokenizer

pytestmark = pytest.mark.skipif(not packed.enabled(), reason="this torch build has no oneDNN")


def _tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _packed_weights(model: torch.nn.Module) -> set[int]:
    """ids of the model's weights that have a packed copy."""
    return {id(p) for p in model.parameters()} & set(packed._PACKED)


@pytest.fixture(params=["gpt2", "llama"])
def model(request, tiny_lm_dir):
    if request.param == "gpt2":  # GPT-2's Conv1D layers (weights stored [in, out]) and a tied head
        return load_model_and_tokenizer(tiny_lm_dir)[0]
    return _tiny_llama()  # nn.Linear layers


def test_packed_forward_equals_the_plain_one_and_packs_every_linear_weight(model):
    ids = torch.randint(3, 60, (3, 7))
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with packed.packed_linears(model):
            fast = model(input_ids=ids).logits
            swapped = [m for m in model.modules() if "forward" in m.__dict__]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    assert all(isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D" for m in swapped)
    linear_weights = {
        id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"
    }
    assert linear_weights
    assert linear_weights <= _packed_weights(model)


def test_a_weight_changed_in_place_is_packed_again(model):
    ids = torch.randint(3, 60, (2, 5))
    head = model.get_output_embeddings().weight
    with torch.no_grad(), packed.packed_linears(model):
        before = model(input_ids=ids).logits
        head.mul_(2.0)  # what an optimizer step does: an in-place update, no new tensor
        after = model(input_ids=ids).logits
    with torch.no_grad():
        plain_after = model(input_ids=ids).logits
    torch.testing.assert_close(after, plain_after, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(after, before)


def test_an_optimizer_step_invalidates_the_packed_copy(tiny_lm_dir):
    model = load_model_and_tokenizer(tiny_lm_dir)[0]
    ids = torch.randint(3, 60, (2, 5))
    with torch.no_grad(), packed.packed_linears(model):
        model(input_ids=ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    model(input_ids=ids).logits.sum().backward()
    optimizer.step()
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with packed.packed_linears(model):
            fast = model(input_ids=ids).logits
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_training_forwards_and_other_dtypes_take_the_plain_layers(tiny_lm_dir):
    model = load_model_and_tokenizer(tiny_lm_dir)[0]
    ids = torch.randint(3, 60, (2, 5))
    with packed.packed_linears(model):  # gradients on: nothing is patched, autograd works as usual
        assert all("forward" not in m.__dict__ for m in model.modules())
        model(input_ids=ids).logits.sum().backward()
    assert not _packed_weights(model)
    half = copy.deepcopy(model).to(torch.bfloat16)
    with torch.no_grad(), packed.packed_linears(half):
        half(input_ids=ids)
    assert not _packed_weights(half)


def test_the_model_is_left_as_it_was_and_the_copies_are_freed_with_it(tiny_lm_dir):
    model = load_model_and_tokenizer(tiny_lm_dir)[0]
    with torch.no_grad(), packed.packed_linears(model):
        model(input_ids=torch.randint(3, 60, (1, 4)))
    assert all("forward" not in m.__dict__ for m in model.modules())
    pickle.loads(pickle.dumps(model))
    keys = _packed_weights(model)
    assert keys
    del model
    gc.collect()
    assert not keys & set(packed._PACKED)


def test_the_environment_variable_turns_it_off(tiny_lm_dir, monkeypatch):
    monkeypatch.setenv("TEXTENV_PACKED_WEIGHTS", "0")
    model = load_model_and_tokenizer(tiny_lm_dir)[0]
    assert not packed.enabled()
    with torch.no_grad(), packed.packed_linears(model):
        model(input_ids=torch.randint(3, 60, (1, 4)))
    assert not _packed_weights(model)


def test_a_write_through_data_is_seen(tiny_lm_dir):
    """``.data`` writes bypass the version counter (peft's merge, old training loops): the sampled values catch them."""
    model = load_model_and_tokenizer(tiny_lm_dir)[0]
    ids = torch.randint(3, 60, (2, 5))
    with torch.no_grad(), packed.packed_linears(model):
        model(input_ids=ids)
        model.get_output_embeddings().weight.data += 0.5
        fast = model(input_ids=ids).logits
    with torch.no_grad():
        plain = model(input_ids=ids).logits
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)  # logits ~30× larger now
