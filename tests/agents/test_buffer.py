"""EpisodeRolloutBuffer: segments, whole-episode minibatches, and GAE on a pay-at-the-end env by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.buffer import EpisodeRolloutBuffer, segments
from agents.policy import SEGMENT_KEY

OBS = spaces.Dict({"input_ids": spaces.Box(0, 9, (4,), np.int64), "attention_mask": spaces.Box(0, 1, (4,), np.int64)})


def _filled(rewards, starts, values, last_values, dones, gamma=1.0, lam=0.95):
    n_steps, n_envs = rewards.shape
    buf = EpisodeRolloutBuffer(n_steps, OBS, spaces.Discrete(10), gamma=gamma, gae_lambda=lam, n_envs=n_envs)
    for t in range(n_steps):
        obs = {"input_ids": np.full((n_envs, 4), t), "attention_mask": np.ones((n_envs, 4), np.int64)}
        buf.add(obs, np.zeros(n_envs), rewards[t], starts[t], torch.tensor(values[t]), torch.zeros(n_envs))
    buf.compute_returns_and_advantage(torch.tensor(last_values), dones)
    return buf


def test_gae_on_an_env_that_pays_only_at_the_last_step():
    # One env, episodes of 3 steps; reward R only at each episode's last step; gamma = 1, lambda = 0.5.
    rewards = np.array([[0.0], [0.0], [1.0], [0.0], [0.0], [2.0]], dtype=np.float32)
    starts = np.array([[1], [0], [0], [1], [0], [0]], dtype=np.float32)
    values = np.array([[0.2], [0.4], [0.6], [0.1], [0.3], [0.5]], dtype=np.float32)
    buf = _filled(rewards, starts, values, last_values=np.array([9.0], dtype=np.float32),
                  dones=np.array([1.0]), lam=0.5)  # fmt: skip
    # by hand: δ_t = r_t + V(s_{t+1})·(not end) − V(s_t); A_t = δ_t + λ·A_{t+1}·(not end)
    d = [0 + 0.4 - 0.2, 0 + 0.6 - 0.4, 1 - 0.6, 0 + 0.3 - 0.1, 0 + 0.5 - 0.3, 2 - 0.5]
    a5 = d[5]
    a4 = d[4] + 0.5 * a5
    a3 = d[3] + 0.5 * a4
    a2 = d[2]
    a1 = d[1] + 0.5 * a2
    a0 = d[0] + 0.5 * a1
    expected = np.array([a0, a1, a2, a3, a4, a5])
    np.testing.assert_allclose(buf.advantages[:, 0], expected, atol=1e-6)
    np.testing.assert_allclose(buf.returns[:, 0], expected + values[:, 0], atol=1e-6)
    # with λ = 1 and γ = 1, every return is the episode's final reward
    buf1 = _filled(rewards, starts, values, np.array([9.0], np.float32), np.array([1.0]), lam=1.0)
    np.testing.assert_allclose(buf1.returns[:, 0], [1, 1, 1, 2, 2, 2], atol=1e-6)


def test_segments_split_at_episode_starts():
    starts = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])
    assert segments(starts) == [(0, 0, 1), (0, 2, 3), (1, 0, 1), (1, 2, 3)]


@pytest.mark.parametrize("batch_size", [None, 1, 3, 100])
def test_minibatches_hold_whole_segments_in_time_order(batch_size):
    n_steps, n_envs = 6, 2
    starts = np.zeros((n_steps, n_envs), np.float32)
    starts[[0, 2, 5], 0] = 1
    starts[[0, 3], 1] = 1
    buf = _filled(np.zeros((n_steps, n_envs), np.float32), starts, np.zeros((n_steps, n_envs), np.float32),
                  np.zeros(n_envs, np.float32), np.zeros(n_envs))  # fmt: skip
    seen = 0
    for batch in buf.get(batch_size):
        seg = batch.observations[SEGMENT_KEY].numpy()
        step = batch.observations["input_ids"][:, 0].numpy()
        assert (np.diff(seg) >= 0).all()
        for s in np.unique(seg):
            assert (np.diff(step[seg == s]) == 1).all()
        seen += len(seg)
        if batch_size is not None:
            assert len(seg) >= min(batch_size, 1)
    assert seen == n_steps * n_envs
