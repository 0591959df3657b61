"""WindowKVCache against plain full forward passes: sliding view, stale rows, buffer wrap-around, padding trim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textenv.kv_cache import WindowKVCache, content_start, forward_windows
from textenv.models import TOY_MODEL, load_model_and_tokenizer
from textenv.sampler import position_ids

WIDTH = 10

pytestmark = pytest.mark.fast_path  # the KV cache and fused reference themselves


def _windows(contexts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(contexts), WIDTH), pad, dtype=torch.long)
    mask = torch.zeros((len(contexts), WIDTH), dtype=torch.long)
    for i, context in enumerate(contexts):
        ids[i, WIDTH - len(context) :] = torch.tensor(context)
        mask[i, WIDTH - len(context) :] = 1
    return ids, mask


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_cache_matches_full_passes_over_many_steps_with_rows_restarting_at_different_times(tiny_lm_dir, attn):
    model, tok = load_model_and_tokenizer(tiny_lm_dir)
    model.config._attn_implementation = attn
    _check_against_full_passes(model, tok.pad_token_id, steps=4 * WIDTH, vocab=60)


def test_cache_matches_full_passes_on_the_real_model(smollm2_dir):
    """SmolLM2 is a Llama: rotary positions and grouped key/value heads go through the same buffers."""
    model, tok = load_model_and_tokenizer(smollm2_dir)
    # 30 layers: float32 sums taken in another order differ by up to ~2e-4 on logits of magnitude ~20 (the cache
    # this one replaced differed as much)
    _check_against_full_passes(model, tok.pad_token_id, steps=2 * WIDTH + 3, vocab=5000, atol=5e-4)


def _check_against_full_passes(model, pad: int, steps: int, vocab: int, atol: float = 1e-5) -> None:
    rng = np.random.default_rng(0)
    # Prompts of different lengths: rows fill their window (and restart) at different steps, so at every step
    # some rows are extended and others recomputed, and the view slides past the end of its buffer.
    contexts = [list(rng.integers(3, vocab, size=n)) for n in (1, 3, 6)]
    cache = WindowKVCache()
    for _ in range(steps):
        ids, mask = _windows(contexts, pad)
        logits, hidden = cache(model, ids, mask)
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True)
        torch.testing.assert_close(logits, out.logits[:, -1].float(), atol=atol, rtol=1e-5)
        torch.testing.assert_close(hidden, out.hidden_states[-1][:, -1], atol=atol, rtol=1e-5)
        for context in contexts:
            if len(context) == WIDTH - 1:  # the window's first column must stay padding: a new episode
                context[:] = list(rng.integers(3, vocab, size=int(rng.integers(1, 5))))
            else:
                context.append(int(rng.integers(3, vocab)))
    # more one-token steps than the buffer is wide: the view was moved back to the buffer's start
    assert cache.n_incremental > 2 * WIDTH
    assert cache.n_recomputed > len(contexts)


def test_repeated_windows_are_served_from_the_cache(tiny_lm_dir):
    model, tok = load_model_and_tokenizer(tiny_lm_dir)
    cache = WindowKVCache()
    ids, mask = _windows([[5, 6], [7]], tok.pad_token_id)
    first = cache(model, ids, mask)
    again = cache(model, ids.clone(), mask.clone())
    assert again[0] is first[0]
    assert cache.n_recomputed == 2
    assert cache.n_incremental == 0


def test_content_start_is_the_first_column_with_a_token():
    mask = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]])
    assert content_start(mask) == 2
    assert content_start(torch.zeros((2, 4), dtype=torch.long)) == 3


def _padded_windows():
    torch.manual_seed(0)
    ids = torch.randint(3, 60, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :7], mask[1, :5], mask[2, :9] = 0, 0, 0  # left padding; columns 0-4 are padding in every row
    return ids.masked_fill(mask == 0, 0), mask


def test_skipping_padding_columns_changes_no_output():
    model, _ = load_model_and_tokenizer(TOY_MODEL)
    ids, mask = _padded_windows()
    with torch.no_grad():
        out = forward_windows(model, ids, mask)
        full = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True)
    assert out.hidden_states[-1].shape[1] == 12 - 5
    torch.testing.assert_close(out.logits[:, -1], full.logits[:, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.hidden_states[-1], full.hidden_states[-1][:, 5:], atol=1e-5, rtol=1e-5)


def test_the_cache_extends_a_trimmed_window_like_a_fresh_pass():
    model, _ = load_model_and_tokenizer(TOY_MODEL)
    ids, mask = _padded_windows()
    cache = WindowKVCache()
    cache(model, ids, mask)
    nxt_ids = torch.cat([ids[:, 1:], torch.tensor([[7], [8], [9]])], 1)
    nxt_mask = torch.cat([mask[:, 1:], torch.ones(3, 1, dtype=torch.long)], 1)
    logits, hidden = cache(model, nxt_ids, nxt_mask)
    assert cache.n_incremental == 3
    fresh_logits, fresh_hidden = WindowKVCache()(model, nxt_ids, nxt_mask)
    torch.testing.assert_close(logits, fresh_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden, fresh_hidden, atol=1e-5, rtol=1e-5)


def test_skipped_rows_are_not_recomputed_and_are_recomputed_when_next_needed(tiny_lm_dir):
    model, tok = load_model_and_tokenizer(tiny_lm_dir)
    pad = tok.pad_token_id

    def full(ids, mask):
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True)
        return out.logits[:, -1], out.hidden_states[-1][:, -1]

    cache = WindowKVCache()
    cache(model, *_windows([[5, 6], [7], [8, 9, 10]], pad))
    # rows 0 and 1 follow; row 2 starts a new episode. Skip rows 1 and 2: row 1 follows, so it is computed anyway.
    contexts = [[5, 6, 11], [7, 12], [13, 14]]
    ids, mask = _windows(contexts, pad)
    logits, hidden = cache(model, ids, mask, skip=torch.tensor([False, True, True]))
    want_logits, want_hidden = full(ids, mask)
    torch.testing.assert_close(logits[:2], want_logits[:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden[:2], want_hidden[:2], atol=1e-5, rtol=1e-5)
    assert not logits[2].any()
    assert not hidden[2].any()
    assert (cache.n_incremental, cache.n_recomputed, cache.n_skipped) == (2, 3, 1)

    # The next step: the skipped row's window now follows the one it was skipped at, yet is recomputed.
    contexts = [[*c, 15] for c in contexts]
    ids, mask = _windows(contexts, pad)
    logits, hidden = cache(model, ids, mask)
    want_logits, want_hidden = full(ids, mask)
    torch.testing.assert_close(logits, want_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden, want_hidden, atol=1e-5, rtol=1e-5)
    assert (cache.n_incremental, cache.n_recomputed) == (4, 4)
