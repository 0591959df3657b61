"""TokenDistribution: the inverse-CDF draw follows the probabilities and never draws a masked token."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical

from agents.distribution import BLOCK, TokenDistribution, sample_tokens


@pytest.mark.slow  # fast: the other sampling tests of this file
def test_draws_follow_the_probabilities_across_blocks_and_skip_zero_probability_tokens():
    vocab = BLOCK + 44  # two blocks, the second padded
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, vocab, generator=generator) * 3
    probs = torch.softmax(logits, -1)
    probs[:, 0] = 0  # first token of the first block
    probs[:, BLOCK - 1 : BLOCK + 1] = 0  # either side of the block boundary
    probs[:, -1] = 0  # last token
    probs /= probs.sum(-1, keepdim=True)
    n = 40_000
    draws = torch.cat([sample_tokens(probs.repeat(2000, 1), generator).view(2000, 2) for _ in range(n // 2000)])
    for row in range(2):
        freq = torch.bincount(draws[:, row], minlength=vocab).double() / n
        p = probs[row].double()
        # every frequency within 5 standard errors of its probability
        assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-12).all()
        assert freq[[0, BLOCK - 1, BLOCK, vocab - 1]].sum() == 0


def test_rows_need_not_be_normalised_and_one_hot_rows_are_exact():
    probs = torch.zeros(3, 700)
    probs[0, 5] = 2.0
    probs[1, 699] = 0.5
    probs[2, 256] = 7.0
    for _ in range(50):
        assert sample_tokens(probs).tolist() == [5, 699, 256]


def test_log_probs_entropy_and_mode_are_the_categorical_ones():
    logits = torch.randn(4, 300)
    dist = TokenDistribution(300).proba_distribution(logits)
    reference = Categorical(logits=logits)
    actions = torch.tensor([0, 17, 299, 150])
    torch.testing.assert_close(dist.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(dist.entropy(), reference.entropy())
    assert torch.equal(dist.get_actions(deterministic=True), logits.argmax(-1))


def test_gradients_match_the_categorical_ones_with_and_without_masked_tokens():
    base = torch.randn(3, 300)
    actions = torch.tensor([105, 117, 299])
    for masked in (False, True):
        grads = []
        for make in (lambda x: TokenDistribution(300).proba_distribution(x), lambda x: Categorical(logits=x)):
            logits = base.clone()
            if masked:
                logits[:, :100] = float("-inf")  # what the policy's top-k does
            logits.requires_grad_(True)
            dist = make(logits)
            loss = dist.log_prob(actions).sum() + 0.5 * dist.entropy().sum()
            loss.backward()
            grads.append((loss.detach(), logits.grad))
        assert torch.isfinite(grads[0][0])
        assert torch.isfinite(grads[0][1]).all()
        torch.testing.assert_close(grads[0][0], grads[1][0])
        torch.testing.assert_close(grads[0][1], grads[1][1])


def test_the_categorical_view_is_the_same_distribution():
    logits = torch.randn(2, 50)
    dist = TokenDistribution(50).proba_distribution(logits)
    torch.testing.assert_close(dist.distribution.probs, torch.softmax(logits, -1))
    dist.distribution = Categorical(logits=logits * 2)  # SB3's attribute can still be assigned
    torch.testing.assert_close(dist.log_probs.exp(), torch.softmax(logits * 2, -1))


def test_draws_are_reproducible_under_the_global_seed():
    probs = torch.softmax(torch.randn(5, 1000), -1)
    torch.manual_seed(3)
    first = sample_tokens(probs)
    torch.manual_seed(3)
    assert torch.equal(first, sample_tokens(probs))
