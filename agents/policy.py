"""``LMPolicy``: a causal LM as the actor-critic of stable-baselines3's PPO and A2C.

One trunk: the LM's next-token distribution (optionally tempered and top-k-truncated) is the policy over the
env's ``Discrete(V)`` actions, and a linear value head reads the same trunk's last hidden state. The reference
model lives in the env; the policy sends ``log π`` of what it samples with the actions, through the vector env
it is connected to (:meth:`LMPolicy.connect`, done at training start by :class:`agents.callbacks.ConnectLogProbs`;
see :mod:`textenv.kl`), so the env's reward carries the exact KL, in this process, in ``SubprocVecEnv`` workers
and in Ray actors alike. A policy built on the env's reference weights (``lora``, ``trainable_layers``) also
scores ``log π_ref`` in the same rollout forward and sends it with the env's model, which an env of this process
then uses instead of a pass of its own (:mod:`agents.fused_reference`).

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
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents.distribution import TokenDistribution
from agents.fused_reference import FusedReference
from agents.model_card import CARD_KEY, ModelCard
from agents.trunk import build_policy_lm
from textenv import packed
from textenv.errors import ConfigError, KLChannelError
from textenv.kl import LogProbMessage, channel_of, logprob_message
from textenv.kv_cache import WindowKVCache, forward_windows
from textenv_common.checks import check_int

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
            process was built with (when exactly one such model matches the action space); failing that, the
            model of the state dict loaded next (``PPO.load(path)`` in a fresh process: the policy's state dict
            carries the model's config and tokenizer, see :mod:`agents.model_card`).
        temperature: Softmax temperature of the action distribution (> 0).
        top_k: Sample only among the ``top_k`` most likely tokens (``None``: all).
        dtype: Precision of the policy's weights (default float32).
        precision: ``"fp32"``, or ``"bf16"``: the LM's forwards run under bfloat16 autocast when the policy is
            on a CUDA device (its weights, optimizer state and value head stay float32); elsewhere it is ignored.
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
        precision: str = "fp32",
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
        check_int("top_k", top_k, 1, error=ConfigError, optional=True)
        # Without a model to build, the policy waits for a state dict with a model card (PPO.load in a fresh
        # process builds the policy first and loads its weights after); used before that, it raises this.
        self._no_model: str | None = None
        if model is None:
            model, self._no_model = _model_of_this_process(int(action_space.n))
        self.model_name = model
        self.temperature = float(temperature)
        self.top_k = top_k
        self.lm_dtype = dtype
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16'; got {precision!r}.")
        self.precision = precision
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
        self._initial_lr = lr_schedule(1)
        self._fused: tuple[FusedReference | None] = (None,)
        self._device_probe = torch.empty(0)  # where .to() sent the policy while it had no LM yet
        if self.model_name is None:
            self.model_card = ModelCard()
            return
        self._build_lm(self.model_name)

    def _build_lm(self, name: str, loaded: tuple[Any, Any] | None = None) -> None:
        """Build the LM, the value head and the optimizer; ``loaded``: a model card's ``(model, tokenizer)``."""
        self.lm, self.tokenizer, shared = build_policy_lm(
            name,
            dtype=self.lm_dtype,
            lora=self.lora,
            trainable_layers=self.trainable_layers,
            share=self.share_reference_weights,
            loaded=loaded,
        )
        self.model_name, self._no_model = name, None
        self.model_card = ModelCard(name, self.lm.config, self.tokenizer)
        # One shared tensor stands for all (in a tuple, so that nn.Module does not register it as a parameter).
        self._shared_probe = (shared[0],) if shared else ()
        # A policy built on the env's reference weights (LoRA, trainable_layers) scores π_ref in its own rollout
        # forward (in a tuple: the reference is not a submodule of the policy). One rebuilt from a model card
        # has weights of its own.
        self._fused = (None if loaded is not None else FusedReference.find(self.lm, name, self.lm_dtype),)
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
        self.optimizer = self._make_optimizer(self._initial_lr)
        if loaded is not None:
            self.to(self._device_probe.device)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load weights; a policy built without a model first rebuilds its LM from the state dict's model card."""
        if self.model_name is None:
            self.model_card.set_extra_state(state_dict.get(CARD_KEY, {}))
            loaded = self.model_card.build(self.lm_dtype)
            self._build_lm(str(self.model_card.name or "the saved policy's model"), loaded=loaded)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _check_input(self, obs: dict[str, torch.Tensor]) -> None:
        """A ConfigError for a policy without a model, or observations that are no longer token ids."""
        if self._no_model is not None:
            raise ConfigError(self._no_model)
        ids, mask = obs["input_ids"], obs["attention_mask"]
        vocab = int(self.action_space.n)  # type: ignore[attr-defined]
        # SB3 hands Box observations over as floats; ids must still be whole numbers in the vocabulary, and the
        # mask 0 or 1. A wrapper that rescales observations (VecNormalize's default norm_obs=True) breaks both.
        bad_ids = bool(((ids != ids.round()) | (ids < 0) | (ids >= vocab)).any())
        if bad_ids or bool(((mask != 0) & (mask != 1)).any()):
            values = ids.flatten()[:6].tolist()
            raise ConfigError(
                f"LMPolicy got observations that are not token ids (input_ids starting {values}; ids must be whole "
                f"numbers in [0, {vocab}) and the attention mask 0 or 1): token observations cannot be normalised. "
                "If the env is wrapped in SB3's VecNormalize, pass VecNormalize(env, norm_obs=False) (reward "
                "normalisation alone is fine)."
            )

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
        if hasattr(self, "_device_probe"):
            self._device_probe = fn(self._device_probe)
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
            precision=self.precision,
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
        if self.model_name is None:
            return
        self.lm.eval()
        if mode:  # the rollout's packed copies of trained weights are stale after the update: free them first
            packed.forget(p for p in self.parameters() if p.requires_grad)
        # Weights change in training: cached keys/values would be stale.
        self._cache.clear()
        fused = getattr(self, "_fused", (None,))[0]
        if fused is not None:
            fused.cache.clear()
        self._discarded = None

    # ------------------------------------------------------------------ the log-prob channel
    def connect(self, env: Any) -> None:
        """Send ``log π`` of every rollout step's actions to ``env`` (a vector env, or one env) from now on.

        SB3 never hands the env to the policy: :class:`agents.callbacks.ConnectLogProbs` calls this when
        training starts. Call it yourself when you drive the policy by hand (``policy(obs)`` then ``env.step``).
        """
        self._channel = (channel_of(env),)

    @contextlib.contextmanager
    def sending_to(self, env: Any) -> Iterator[None]:
        """Within the block, send log-probs to ``env``; the connection before it is restored after it."""
        before = self.__dict__.get("_channel")
        self.connect(env)
        try:
            yield
        finally:
            if before is None:
                self.__dict__.pop("_channel", None)
            else:
                self._channel = before

    def _send(self, message: LogProbMessage) -> None:
        channel = self.__dict__.get("_channel")
        if channel is None:
            raise KLChannelError(
                "LMPolicy sends log π of its actions through the env, but it is connected to none: learn with "
                "callback=agents.ConnectLogProbs() (textenv train/compare add it), or call policy.connect(env) "
                "before driving the policy by hand."
            )
        channel[0](message)

    # ------------------------------------------------------------------ the SB3 policy interface
    def forward(  # type: ignore[override]
        self, obs: dict[str, torch.Tensor], deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions for a batch of observations; returns ``(actions, values, log_probs)``.

        Sends ``log π`` of the sampled actions to the connected env (:meth:`connect`); a policy built on the env's
        reference weights (``lora``, ``trainable_layers``) sends ``log π_ref`` too, scored in the same forward
        (:class:`~agents.fused_reference.FusedReference`).

        Raises:
            KLChannelError: The policy is connected to no env.
        """
        return self._act(obs, deterministic=deterministic)

    def sample_with(self, obs: dict[str, torch.Tensor], uniforms: torch.Tensor) -> torch.Tensor:
        """Like :meth:`forward`, but each row's token is the one its variate in ``uniforms`` picks (inverse CDF).

        Two policies given the same variates draw the same token wherever their distributions agree: the common
        random numbers of a paired before/after evaluation. Sends ``log π`` to the env as :meth:`forward` does.
        """
        return self._act(obs, uniforms=uniforms)[0]

    def _act(
        self, obs: dict[str, torch.Tensor], deterministic: bool = False, uniforms: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_input(obs)
        logits, hidden, ref_logits = self._rollout_outputs(obs)
        distribution = self._distribution(logits)
        if uniforms is not None and isinstance(distribution, TokenDistribution):
            actions = distribution.sample_with(uniforms)
        else:
            actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        values = self._value(hidden)
        ref_logprobs = None
        if ref_logits is not None:
            ref_all = torch.log_softmax(ref_logits.float(), dim=-1)
            ref_logprobs = ref_all.gather(1, actions.long().reshape(-1, 1)).double().cpu().numpy()
        fused = self._fused[0]
        self._send(
            logprob_message(
                obs["input_ids"].long().cpu().numpy(),
                actions.cpu().numpy(),
                log_prob.detach().double().cpu().numpy(),
                attention_mask=obs["attention_mask"].long().cpu().numpy(),
                ref_logprobs=ref_logprobs,
                reference=None if ref_logprobs is None or fused is None else fused.reference,
            )
        )
        return actions, values, log_prob

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Values of a batch of observations, shape ``(n, 1)``.

        Rows announced by :meth:`discard_values` for exactly these observations may come back as 0 without a
        forward pass (only when the rollout cache cannot serve them with one token).
        """
        self._check_input(obs)
        ids, _ = self._windows(obs)
        skip = self._take_discarded(ids)
        if skip is not None and bool(skip.all()):
            return torch.zeros((ids.shape[0], 1), device=ids.device)
        _, hidden, _ = self._rollout_outputs(obs, skip=skip)  # the rollout's cache serves the rows that follow it
        return self._value(hidden)

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
        self._check_input(obs)
        with self._autocast():
            logits, _ = self._last_position(obs)
        return self._distribution(logits)

    def evaluate_actions(  # type: ignore[override]
        self, obs: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities and entropies of ``actions`` taken in ``obs`` (with gradients)."""
        self._check_input(obs)
        actions = actions.long().flatten()
        with self._autocast():
            if SEGMENT_KEY in obs:
                hidden = self._hidden_by_episode(obs, actions)
                logits = self.lm.get_output_embeddings()(hidden).float()
            else:
                logits, hidden = self._forward_windows(obs["input_ids"].long(), obs["attention_mask"].long())
        distribution = self._distribution(logits)
        values = self._value(hidden)
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
        with self._autocast():
            if fused is None:
                return (*self._last_position(obs, skip=skip), None)
            ids, mask = self._windows(obs)
            return fused(ids, mask, skip=skip)

    def _value(self, hidden: torch.Tensor) -> torch.Tensor:
        """The value head on last hidden states (which bf16 autocast may have left in bfloat16)."""
        return self.value_head(hidden.to(self.value_head.weight.dtype)).float()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast on CUDA for ``precision="bf16"`` (float32 weights stay the master copy)."""
        device = self.value_head.weight.device
        if self.precision == "bf16" and device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

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


def _model_of_this_process(vocab_size: int) -> tuple[str | None, str | None]:
    """``(name, None)`` for the one env model of this process with ``vocab_size`` tokens, else ``(None, why)``."""
    from textenv.model_cache import MODELS

    names = MODELS.names(vocab_size)
    if len(names) == 1:
        return names[0], None
    found = f"found {names}" if names else "found none"
    return None, (
        f"LMPolicy needs to know which model to fine-tune ({found} among the envs of this process with "
        f"{vocab_size} tokens), and no saved policy was loaded into it: pass policy_kwargs={{'model': "
        "'<hub id or folder>'}, or load a saved one with PPO.load(path) / A2C.load(path)."
    )
