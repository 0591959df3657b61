"""forward_windows skips all-padding columns without changing any output; the window cache stays aligned."""

from __future__ import annotations

import torch

from textenv.kv_cache import WindowKVCache, first_real_column, forward_windows
from textenv.models import TOY_MODEL, load_model_and_tokenizer
from textenv.sampler import position_ids


def _windows():
    torch.manual_seed(0)
    ids = torch.randint(3, 60, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :7], mask[1, :5], mask[2, :9] = 0, 0, 0  # left padding; columns 0-4 are padding in every row
    return ids.masked_fill(mask == 0, 0), mask


def test_first_real_column():
    _, mask = _windows()
    assert first_real_column(mask) == 5
    assert first_real_column(torch.ones(2, 4, dtype=torch.long)) == 0
    assert first_real_column(torch.zeros(2, 4, dtype=torch.long)) == 0


def test_skipping_padding_columns_changes_no_output():
    model, _ = load_model_and_tokenizer(TOY_MODEL)
    ids, mask = _windows()
    with torch.no_grad():
        out = forward_windows(model, ids, mask)
        full = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True)
    assert out.hidden_states[-1].shape[1] == 12 - 5
    torch.testing.assert_close(out.logits[:, -1], full.logits[:, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.hidden_states[-1], full.hidden_states[-1][:, 5:], atol=1e-5, rtol=1e-5)


def test_the_cache_extends_a_trimmed_window_like_a_fresh_pass():
    model, _ = load_model_and_tokenizer(TOY_MODEL)
    ids, mask = _windows()
    cache = WindowKVCache()
    cache(model, ids, mask)
    nxt_ids = torch.cat([ids[:, 1:], torch.tensor([[7], [8], [9]])], 1)
    nxt_mask = torch.cat([mask[:, 1:], torch.ones(3, 1, dtype=torch.long)], 1)
    logits, hidden = cache(model, nxt_ids, nxt_mask)
    assert cache.n_incremental == 3
    fresh_logits, fresh_hidden = WindowKVCache()(model, nxt_ids, nxt_mask)
    torch.testing.assert_close(logits, fresh_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden, fresh_hidden, atol=1e-5, rtol=1e-5)
