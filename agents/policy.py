"""``LMPolicy``: a causal LM as the actor-critic of stable-baselines3's PPO and A2C.

One trunk: the LM's next-token distribution (optionally tempered and top-k-truncated) is the policy over the
env's ``Discrete(V)`` actions, and a linear value head reads the same trunk's last hidden state. The reference
model lives in the env; the policy publishes ``log π`` of what it samples on the env's log-prob channel
(:func:`textenv.kl.post_logprobs`), so the env's reward carries the exact KL. A policy built on the env's reference
weights (``lora``, ``trainable_layers``) also scores ``log π_ref`` in the same rollout forward and posts it with
the env's model, which the env then uses instead of a pass of its own (:mod:`agents.fused_reference`).

Speed: rollouts go through :class:`~textenv.kv_cache.WindowKVCache` (one token per row per step); training
evaluates whole episodes in one forward pass when the rollout buffer is
:class:`~agents.buffer.EpisodeRolloutBuffer` (it marks which transitions belong to one episode), and otherwise
evaluates every transition's window as one row of a single batched pass.

Dropout stays off in training too: PPO's ratio must start at exactly 1 for the log-probabilities sampled in
the
rollout, as in TRL.
"""

from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents.distribution import TokenDistribution
from agents.fused_reference import FusedReference
from agents.trunk import build_policy_lm
from textenv import packed
from textenv.errors import ConfigError
from textenv.kl import clear_posted_logprobs, post_logprobs
from textenv.kv_cache import WindowKVCache, forward_windows

__all__ = ["SEGMENT_KEY", "LMPolicy"]

#: Extra observation key that EpisodeRolloutBuffer adds: the index, within a minibatch, of each transition's
#: episode segment (transitions of one segment are consecutive steps of one episode, in order).
SEGMENT_KEY = "segment"


class LMPolicy(ActorCriticPolicy):
    """Actor-critic over a Hugging Face causal LM, for ``PPO(LMPolicy, env)`` and ``A2C(LMPolicy, env)``.

    Args:
        observation_space: The text env's ``Dict`` observation space.
        action_space: ``Discrete(V)``; ``V`` must equal the model's vocabulary size.
        lr_schedule: SB3's learning-rate schedule.
        model: Hub id or local folder of the causal LM to fine-tune. Default: the model that the env of this
            process was built with (when exactly one such model matches the action space).
        temperature: Softmax temperature of the action distribution (> 0).
        top_k: Sample only among the ``top_k`` most likely tokens (``None``: all).
        dtype: Precision of the policy's weights (default float32).
        lora: Train a LoRA adapter (``peft``) instead of the weights: ``True`` for
            :data:`agents.trunk.LORA_DEFAULTS`, or a mapping of ``peft.LoraConfig`` fields. The reference is
            then the same weights with the adapter disabled (see :mod:`agents.trunk`).
        trainable_layers: Train only the top ``N`` transformer blocks (with ``lora``: put adapters only
            there); the frozen rest is shared with the env's reference model. ``None``: every layer.
        share_reference_weights: Reuse the frozen tensors of the env's reference model of this process
            (default). The policy must then stay on the reference's device and dtype.
        optimizer_class: Optimizer of policy and value head (default ``torch.optim.AdamW``).
        optimizer_kwargs: Its keyword arguments. Adam and AdamW run their fused kernel (``fused=True``, as
            transformers' ``Trainer`` does) unless ``fused`` or ``foreach`` is given or the device has no such
            kernel: one pass over the state instead of several, about 5x faster on the CPU.
        **kwargs: Accepted for SB3 compatibility (``use_sde`` must stay False).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        action_space: gym.spaces.Discrete,
        lr_schedule: Schedule,
        *,
        model: str | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        dtype: str | None = None,
        lora: bool | dict[str, Any] | None = None,
        trainable_layers: int | None = None,
        share_reference_weights: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.AdamW,
        optimizer_kwargs: dict[str, Any] | None = None,
        use_sde: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError(f"LMPolicy needs a Discrete action space (token ids); got {action_space}.")
        if not isinstance(observation_space, gym.spaces.Dict) or "input_ids" not in observation_space.spaces:
            raise ConfigError(
                "LMPolicy needs a text env's Dict observation with 'input_ids' and 'attention_mask'; "
                f"got {observation_space}."
            )
        if use_sde:
            raise ConfigError("use_sde=True has no meaning for token actions; leave it False.")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ConfigError(f"temperature must be a number > 0; got {temperature!r}.")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be None or an integer ≥ 1; got {top_k!r}.")
        self.model_name = model if model is not None else _model_of_this_process(int(action_space.n))
        self.temperature = float(temperature)
        self.top_k = top_k
        self.lm_dtype = dtype
        self.lora = lora
        self.trainable_layers = trainable_layers
        self.share_reference_weights = bool(share_reference_weights)
        self._cache = WindowKVCache()
        self._discarded: tuple[Any, Any] | None = None  # (input ids, rows): see discard_values
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            **kwargs,
        )

    # ------------------------------------------------------------------ construction
    def _build(self, lr_schedule: Schedule) -> None:
        self.lm, self.tokenizer, shared = build_policy_lm(
            self.model_name,
            dtype=self.lm_dtype,
            lora=self.lora,
            trainable_layers=self.trainable_layers,
            share=self.share_reference_weights,
        )
        # One shared tensor stands for all (in a tuple, so that nn.Module does not register it as a parameter).
        self._shared_probe = (shared[0],) if shared else ()
        # A policy built on the env's reference weights (LoRA, trainable_layers) scores π_ref in its own rollout
        # forward (in a tuple: the reference is not a submodule of the policy).
        self._fused = (FusedReference.find(self.lm, self.model_name, self.lm_dtype),)
        vocab = int(self.lm.config.vocab_size)
        n_actions = int(self.action_space.n)  # type: ignore[attr-defined]
        if vocab != n_actions:
            raise ConfigError(
                f"The policy model {self.model_name!r} has a vocabulary of {vocab} tokens but the env's "
                f"action space is Discrete({n_actions}): build the env and the policy from the same model "
                "(policy_kwargs={'model': ...})."
            )
        self.lm.config.use_cache = True
        hidden = int(self.lm.get_output_embeddings().weight.shape[1])
        self.value_head = nn.Linear(hidden, 1)
        # Zero at the start: a random head on hidden states of norm ~sqrt(H) predicts values far larger than
        # typical rewards, and GAE would then turn its noise into the advantages that steer the LM. At zero,
        # the first advantages are the rewards-to-go themselves (REINFORCE), and the head learns from there.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(dtype=next(self.lm.parameters()).dtype)
        self.action_dist = TokenDistribution(int(self.action_space.n))  # type: ignore[attr-defined]
        self.optimizer = self._make_optimizer(lr_schedule(1))

    def _make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        kwargs = dict(self.optimizer_kwargs)
        trainable = [p for p in self.parameters() if p.requires_grad]  # frozen weights get no optimizer state
        optimizer: torch.optim.Optimizer | None = None
        if self.optimizer_class in (torch.optim.Adam, torch.optim.AdamW) and not {"fused", "foreach"} & set(kwargs):
            with contextlib.suppress(RuntimeError):  # no fused kernel for these parameters' device or dtype
                optimizer = self.optimizer_class(trainable, lr=lr, fused=True, **kwargs)
        if optimizer is None:
            optimizer = self.optimizer_class(trainable, lr=lr, **kwargs)  # type: ignore[call-arg]
        # SB3 clears gradients just before each backward, after the forward: freed right after the step instead,
        # they no longer sit next to the next forward's activations (or through the next rollout).
        optimizer.register_step_post_hook(_free_gradients)
        return optimizer

    def _apply(self, fn: Any, recurse: bool = True) -> LMPolicy:
        # Tried on one shared tensor first: moving the policy would move the env's reference model under it.
        for probe in getattr(self, "_shared_probe", ()):
            moved = fn(probe)
            if moved.device != probe.device or moved.dtype != probe.dtype:
                raise ConfigError(
                    f"The policy shares its frozen weights with the env's reference model on {probe.device} "
                    f"({probe.dtype}) and cannot move to {moved.device} ({moved.dtype}): build the env with the "
                    "same device/dtype, or pass policy_kwargs={'share_reference_weights': False}."
                )
        super()._apply(fn, recurse)
        return self

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            model=self.model_name,
            temperature=self.temperature,
            top_k=self.top_k,
            dtype=self.lm_dtype,
            lora=self.lora,
            trainable_layers=self.trainable_layers,
            share_reference_weights=self.share_reference_weights,
        )
        for key in ("net_arch", "activation_fn", "ortho_init", "log_std_init", "squash_output", "full_std"):
            data.pop(key, None)
        return data

    def set_training_mode(self, mode: bool) -> None:
        """Switch train/eval mode; the LM itself always runs without dropout (see the module docstring)."""
        super().set_training_mode(mode)
        self.lm.eval()
        if mode:  # the rollout's packed copies of trained weights are stale after the update: free them first
            packed.forget(p for p in self.parameters() if p.requires_grad)
        # Weights change in training: cached keys/values and posted log-probs would be stale.
        self._cache.clear()
        fused = getattr(self, "_fused", (None,))[0]
        if fused is not None:
            fused.cache.clear()
        self._discarded = None
        clear_posted_logprobs()

    # ------------------------------------------------------------------ the SB3 policy interface
    def forward(  # type: ignore[override]
        self, obs: dict[str, torch.Tensor], deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions for a batch of observations; returns ``(actions, values, log_probs)``.

        Posts ``log π`` of the sampled actions for the env; a policy built on the env's reference weights
        (``lora``, ``trainable_layers``) posts ``log π_ref`` too, scored in the same forward
        (:class:`~agents.fused_reference.FusedReference`).
        """
        return self._act(obs, deterministic=deterministic)

    def sample_with(self, obs: dict[str, torch.Tensor], uniforms: torch.Tensor) -> torch.Tensor:
        """Like :meth:`forward`, but each row's token is the one its variate in ``uniforms`` picks (inverse CDF).

        Two policies given the same variates draw the same token wherever their distributions agree: the common
        random numbers of a paired before/after evaluation. Posts ``log π`` for the env as :meth:`forward` does.
        """
        return self._act(obs, uniforms=uniforms)[0]

    def _act(
        self, obs: dict[str, torch.Tensor], deterministic: bool = False, uniforms: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, hidden, ref_logits = self._rollout_outputs(obs)
        distribution = self._distribution(logits)
        if uniforms is not None and isinstance(distribution, TokenDistribution):
            actions = distribution.sample_with(uniforms)
        else:
            actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        values = self.value_head(hidden).float()
        ref_logprobs = None
        if ref_logits is not None:
            ref_all = torch.log_softmax(ref_logits.float(), dim=-1)
            ref_logprobs = ref_all.gather(1, actions.long().reshape(-1, 1)).double().cpu().numpy()
        fused = self._fused[0]
        post_logprobs(
            obs["input_ids"].long().cpu().numpy(),
            actions.cpu().numpy(),
            log_prob.detach().double().cpu().numpy(),
            attention_mask=obs["attention_mask"].long().cpu().numpy(),
            ref_logprobs=ref_logprobs,
            reference=None if ref_logprobs is None or fused is None else fused.reference,
        )
        return actions, values, log_prob

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Values of a batch of observations, shape ``(n, 1)``.

        Rows announced by :meth:`discard_values` for exactly these observations may come back as 0 without a
        forward pass (only when the rollout cache cannot serve them with one token).
        """
        ids, _ = self._windows(obs)
        skip = self._take_discarded(ids)
        if skip is not None and bool(skip.all()):
            return torch.zeros((ids.shape[0], 1), device=ids.device)
        _, hidden, _ = self._rollout_outputs(obs, skip=skip)  # the rollout's cache serves the rows that follow it
        return self.value_head(hidden).float()

    def discard_values(self, input_ids: Any, rows: Any) -> None:
        """Announce that the values of ``rows`` of the next :meth:`predict_values` call will be thrown away.

        SB3 ends each rollout with ``predict_values`` of the last observations and multiplies each by
        ``1 - done``: where an env's episode has just ended, the value of its new first observation is never
        used, yet computing it means a forward pass over the whole new prompt.
        :class:`~agents.callbacks.SkipDiscardedValues` calls this at the last step of every rollout. The
        announcement holds for one call, and only if that call's ``input_ids`` equal ``input_ids``.

        Args:
            input_ids: The observations' ``input_ids``, shape ``(n, W)``.
            rows: Boolean ``(n,)``: the rows whose values will be discarded.
        """
        self._discarded = (torch.as_tensor(input_ids).long().clone(), torch.as_tensor(rows, dtype=torch.bool))

    def _take_discarded(self, ids: torch.Tensor) -> torch.Tensor | None:
        announced, self._discarded = self._discarded, None
        if announced is None or announced[0].shape != ids.shape or not torch.equal(announced[0], ids.cpu()):
            return None
        return announced[1].to(ids.device)

    def get_distribution(self, obs: dict[str, torch.Tensor]) -> CategoricalDistribution:  # type: ignore[override]
        """The action distribution for a batch of observations."""
        logits, _ = self._last_position(obs)
        return self._distribution(logits)

    def evaluate_actions(  # type: ignore[override]
        self, obs: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities and entropies of ``actions`` taken in ``obs`` (with gradients)."""
        actions = actions.long().flatten()
        if SEGMENT_KEY in obs:
            hidden = self._hidden_by_episode(obs, actions)
            logits = self.lm.get_output_embeddings()(hidden).float()
        else:
            logits, hidden = self._forward_windows(obs["input_ids"].long(), obs["attention_mask"].long())
        distribution = self._distribution(logits)
        values = self.value_head(hidden).float()
        return values, distribution.log_prob(actions), distribution.entropy()

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)

    # ------------------------------------------------------------------ internals
    def _distribution(self, logits: torch.Tensor) -> CategoricalDistribution:
        logits = logits / self.temperature
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return self.action_dist.proba_distribution(action_logits=logits)  # type: ignore[return-value]

    @staticmethod
    def _windows(obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
        if ids.ndim == 1:
            ids, mask = ids[None], mask[None]
        return ids, mask

    def _last_position(
        self, obs: dict[str, torch.Tensor], skip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self._windows(obs)
        if torch.is_grad_enabled():
            return self._forward_windows(ids, mask)
        return self._cache(self.lm, ids, mask, skip=skip)

    def _rollout_outputs(
        self, obs: dict[str, torch.Tensor], skip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(logits, hidden, reference logits or None)``: through the fused scorer in no-grad rollouts."""
        fused = None if torch.is_grad_enabled() else self._fused[0]
        if fused is None:
            return (*self._last_position(obs, skip=skip), None)
        ids, mask = self._windows(obs)
        return fused(ids, mask, skip=skip)

    def _forward_windows(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = forward_windows(self.lm, ids, mask)
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1]

    def _hidden_by_episode(self, obs: dict[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """Last hidden states of every transition, from one forward pass over each episode segment.

        The last transition of a segment holds the segment's whole context: its window plus its action (the
        window's first column is always padding, so dropping it keeps the width). Transition ``j`` of a
        segment of length ``L`` then reads the hidden state at column ``W - 1 - L + j``.
        """
        segment = obs[SEGMENT_KEY].long().flatten()
        ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
        n_seg = int(segment.max()) + 1
        width = ids.shape[1]
        last = torch.zeros(n_seg, dtype=torch.long, device=ids.device)
        last.scatter_reduce_(0, segment, torch.arange(len(segment), device=ids.device), reduce="amax")
        length = torch.bincount(segment, minlength=n_seg)
        first = last - length + 1
        seq = torch.cat([ids[last, 1:], actions[last, None]], dim=1)
        seq_mask = torch.cat([mask[last, 1:], torch.ones_like(actions[last, None])], dim=1)
        out = forward_windows(self.lm, seq, seq_mask)
        skipped = width - out.hidden_states[-1].shape[1]  # all-padding columns forward_windows did not compute
        step = torch.arange(len(segment), device=ids.device) - first[segment]
        column = width - 1 - length[segment] + step - skipped
        hidden: torch.Tensor = out.hidden_states[-1][segment, column]
        return hidden

    @property
    def cache(self) -> WindowKVCache:
        """The rollout KV cache (its counters say how many rows were served incrementally)."""
        fused = self._fused[0]
        return self._cache if fused is None else fused.cache


def _free_gradients(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    optimizer.zero_grad(set_to_none=True)


def _model_of_this_process(vocab_size: int) -> str:
    from textenv.env import _SHARED_MODELS

    names = sorted(
        {key[0].split("|")[0] for key, (model, _) in _SHARED_MODELS.items() if model.config.vocab_size == vocab_size}
    )
    if len(names) == 1:
        return names[0]
    found = f"found {names}" if names else "found none"
    raise ConfigError(
        f"LMPolicy needs to know which model to fine-tune ({found} among the envs of this process with "
        f"{vocab_size} tokens): pass policy_kwargs={{'model': '<hub id or folder>'}}."
    )
