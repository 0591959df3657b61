"""Row C: the naive design that textenv is measured against, written here and used nowhere else.

The RL4LMs shape: a Gymnasium env over a fixed, left-padded window of ``prompt_tokens + new_tokens`` token ids,
and an SB3 actor-critic whose policy runs the language model over the **whole window at every step** (no KV
cache), and whose training evaluates **every transition's window** as its own row (SB3's per-transition
rollout buffer and minibatches), so an episode of T tokens costs T full-window passes in the rollout and T more
in each epoch of training. It is not a straw man: the policy and the reference are batched across the envs
(one pass of each per step for all rows), the reward is the same cheap callable, and the KL term is exact.

The reference model is a frozen copy held by the policy, scored over the whole window at every step; the
policy hands each env its row's ``log π(a) - log π_ref(a)`` through :class:`KLBoard` before the envs step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from textenv.models import load_model_and_tokenizer, reference_copy
from textenv.sampler import position_ids

__all__ = ["KLBoard", "NaivePolicy", "NaiveWindowEnv", "make_naive_vec_env"]


class KLBoard:
    """Per-env KL of the step about to be taken, written by the policy and read by env ``i``."""

    def __init__(self, n_envs: int) -> None:
        self.kl = np.zeros(n_envs)


class NaiveWindowEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """One completion per episode over a fixed, left-padded window; reward ``R`` at the end minus ``β·KL`` per step."""

    def __init__(
        self,
        tokenizer: Any,
        prompts: Sequence[str],
        reward: Callable[..., Sequence[float]],
        *,
        vocab_size: int,
        prompt_tokens: int,
        new_tokens: int,
        board: KLBoard,
        index: int,
        kl_coef: float = 0.05,
    ) -> None:
        self.tokenizer, self.prompts, self.reward = tokenizer, list(prompts), reward
        self.prompt_tokens, self.new_tokens = prompt_tokens, new_tokens
        self.window = prompt_tokens + new_tokens
        self.board, self.index, self.kl_coef = board, index, kl_coef
        self.pad = int(tokenizer.pad_token_id)
        self.eos = int(tokenizer.eos_token_id)
        self.action_space = spaces.Discrete(vocab_size)
        box = spaces.Box(0, vocab_size - 1, shape=(self.window,), dtype=np.int64)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {"input_ids": box, "attention_mask": spaces.Box(0, 1, shape=(self.window,), dtype=np.int64)}
        )
        self._prompt = ""
        self._context: list[int] = []
        self._n_new = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._prompt = self.prompts[int(self.np_random.integers(len(self.prompts)))]
        self._context = list(self.tokenizer(self._prompt)["input_ids"])[-self.prompt_tokens :]
        self._n_new = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        token = int(action)
        reward = -self.kl_coef * float(self.board.kl[self.index])
        self._context.append(token)
        self._n_new += 1
        done = token == self.eos or self._n_new >= self.new_tokens
        if done:
            completion = self.tokenizer.decode(self._context[-self._n_new :], skip_special_tokens=True)
            reward += float(self.reward([self._prompt], [completion])[0])
        return self._obs(), reward, done, False, {}

    def _obs(self) -> dict[str, np.ndarray]:
        ids = np.full(self.window, self.pad, dtype=np.int64)
        mask = np.zeros(self.window, dtype=np.int64)
        ids[self.window - len(self._context) :] = self._context
        mask[self.window - len(self._context) :] = 1
        return {"input_ids": ids, "attention_mask": mask}


class NaivePolicy(ActorCriticPolicy):
    """An LM actor-critic that recomputes the whole window for every action and every evaluated transition.

    Args:
        model: Folder of the causal LM.
        board: Where the KL of each row is handed to the envs.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        *,
        model: str,
        board: KLBoard,
        **kwargs: Any,
    ) -> None:
        self.model_name, self.board = model, board
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        self.lm, _ = load_model_and_tokenizer(self.model_name)
        # A frozen copy kept outside the module tree, so neither the optimizer nor state_dict sees it.
        self.__dict__["reference"] = reference_copy(self.lm)
        hidden = int(self.lm.get_output_embeddings().weight.shape[1])
        self.value_head = nn.Linear(hidden, 1)
        self.action_dist = CategoricalDistribution(int(self.action_space.n))  # type: ignore[attr-defined]
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        self.lm.eval()  # no dropout, as in textenv's policy

    def _window(self, model: Any, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
        out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True,
                    logits_to_keep=1)  # fmt: skip
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1]

    def forward(  # type: ignore[override]
        self, obs: dict[str, torch.Tensor], deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, hidden = self._window(self.lm, obs)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        with torch.no_grad():
            ref_logits, _ = self._window(self.__dict__["reference"], obs)
            ref_log_prob = torch.log_softmax(ref_logits, -1).gather(1, actions[:, None])[:, 0]
        self.board.kl[:] = (log_prob - ref_log_prob).double().cpu().numpy()
        return actions, self.value_head(hidden).float(), log_prob

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return self.value_head(self._window(self.lm, obs)[1]).float()

    def evaluate_actions(  # type: ignore[override]
        self, obs: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, hidden = self._window(self.lm, obs)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        actions = actions.long().flatten()
        return self.value_head(hidden).float(), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: dict[str, torch.Tensor]) -> CategoricalDistribution:  # type: ignore[override]
        return self.action_dist.proba_distribution(action_logits=self._window(self.lm, obs)[0])  # type: ignore[return-value]

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)


def make_naive_vec_env(
    folder: str, prompts: Sequence[str], reward: Callable[..., Sequence[float]], *, n_envs: int, prompt_tokens: int,
    new_tokens: int, seed: int = 0,
) -> tuple[DummyVecEnv, KLBoard]:  # fmt: skip
    """``n_envs`` naive envs in SB3's ``DummyVecEnv``, and the board their policy writes the KL to."""
    _, tokenizer = load_model_and_tokenizer(folder)
    vocab = int(_vocab_size(folder))
    board = KLBoard(n_envs)

    def build(i: int) -> Callable[[], gym.Env[Any, Any]]:
        return lambda: NaiveWindowEnv(tokenizer, prompts, reward, vocab_size=vocab, prompt_tokens=prompt_tokens,
                                      new_tokens=new_tokens, board=board, index=i)  # fmt: skip

    vec = DummyVecEnv([build(i) for i in range(n_envs)])
    vec.seed(seed)
    return vec, board


def _vocab_size(folder: str) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    return int(config.get_text_config().vocab_size)
