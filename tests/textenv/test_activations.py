"""GPT-2's tanh GELU swapped for torch's fused kernel: same outputs and gradients, applied by the loader."""

from __future__ import annotations

import copy

import torch
from transformers import AutoModelForCausalLM
from transformers.activations import NewGELUActivation

from textenv.activations import fuse_activations
from textenv.models import load_model_and_tokenizer, reference_copy


def _count(model: torch.nn.Module, kind: type) -> int:
    return sum(type(m) is kind for m in model.modules())


def test_the_fused_model_matches_transformers_activation_forward_and_backward(tiny_lm_dir):
    plain = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    fused = copy.deepcopy(plain)
    assert _count(plain, NewGELUActivation) == plain.config.n_layer
    assert fuse_activations(fused) == plain.config.n_layer
    assert _count(fused, NewGELUActivation) == 0

    ids = torch.randint(3, 60, (3, 9))
    losses = []
    for model in (plain, fused):
        out = model(input_ids=ids).logits
        out.logsumexp(-1).sum().backward()
        losses.append(out)
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    for (name, p), q in zip(plain.named_parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_loaded_models_and_reference_copies_run_the_fused_kernel_and_save_unchanged(tiny_lm_dir, tmp_path):
    model, _ = load_model_and_tokenizer(tiny_lm_dir)
    assert _count(model, NewGELUActivation) == 0
    assert _count(model, torch.nn.GELU) == model.config.n_layer

    plain = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    assert _count(reference_copy(plain), torch.nn.GELU) == plain.config.n_layer
    assert _count(plain, NewGELUActivation) == plain.config.n_layer  # the caller's model is left as it was

    model.save_pretrained(tmp_path / "saved")  # the config still names transformers' activation
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    assert reloaded.config.activation_function == "gelu_new"
    assert _count(reloaded, NewGELUActivation) == plain.config.n_layer


def test_models_without_gpt2_activation_are_left_alone():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.SiLU())
    assert fuse_activations(model) == 0
    assert isinstance(model[1], torch.nn.SiLU)
