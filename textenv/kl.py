"""The KL penalty: its coefficient β (fixed or adaptive) and the channel that carries log π to the env.

The env pays ``-β·(log π(a_t|s_t) - log π_ref(a_t|s_t))`` at every step. It owns π_ref (a frozen model) and β,
but it cannot know log π, the probability with which the *agent* chose ``a_t``. The agent tells it through the
**log-prob channel**: with each batch of actions it sends a :class:`LogProbMessage` (the observed token windows,
the sampled actions and their log-probabilities) *through the vector env*, so the message travels the way the
actions do and reaches envs in this process, in ``SubprocVecEnv`` workers and in Ray actors alike. No
module-level state is involved:

- a vector env that carries messages itself has a method ``send_logprobs(message)``
  (:class:`textenv.vector.TextVecEnv`, :class:`textenv.ray_vec_env.RayVecEnv`); any other SB3 ``VecEnv`` (and
  ``SubprocVecEnv``) gets it through ``env_method``, a Gymnasium vector env through ``call``;
- :func:`send_logprobs` is the one call that does the right one of these, for any env or vector env;
- ``agents.LMPolicy`` sends its message with every rollout step through the env it is connected to
  (``agents.ConnectLogProbs``, a callback that ``textenv train`` and ``compare`` add, connects it).

At ``step`` an env takes the row whose window and action match its own; matching by content rather than by row
index is what lets one message reach every sub-env in any order, with no bookkeeping of indices. A message is
dropped at the env's next ``step`` or ``reset``.

When a step arrives with no matching message (a random agent, a plain SB3 policy that does not know the
channel), the env's ``unlogged_policy`` decides what ``log π`` means:

- ``"uniform"`` (default): assume the action was drawn uniformly from the vocabulary, ``log π = -log V``. This
  is exact for ``env.action_space.sample()``, and for any other agent the step reward becomes
  ``β·(log π_ref(a_t) + log V)``, a shaping term that favours tokens the reference finds likely.
- ``"zero"``: no KL term at all; the reward is the reward model's score alone (``info["kl"]`` is 0).
- ``"error"``: raise :class:`~textenv.errors.KLChannelError` -- for agents that must use the channel.

``info["kl_source"]`` says which case applied to each step ("policy", "uniform" or "none").

The env scores ``log π_ref`` itself, with its own reference model. One exception saves a forward pass per
step: an agent whose policy is built on the env's reference weights (a LoRA adapter over them, or the top blocks
trained and the rest shared, as ``agents.LMPolicy`` with ``lora=...`` or ``trainable_layers=...`` builds) can
score π_ref in its own batched forward, and send those values with ``ref_logprobs=`` and ``reference=`` the env's
model object. An env takes them only when ``reference`` is its own model (which only an env of the agent's own
process can have); otherwise it scores π_ref itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from textenv.errors import ConfigError

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "KLController",
    "LogProbMessage",
    "UnloggedPolicy",
    "channel_of",
    "logprob_message",
    "make_kl_controller",
    "send_logprobs",
]

UnloggedPolicy = Literal["uniform", "zero", "error"]
UNLOGGED_POLICIES: tuple[str, ...] = ("uniform", "zero", "error")


class KLController(Protocol):
    """What the env needs of a KL coefficient: its current value and an update from measured KL."""

    value: float

    def update(self, kl: float, n_samples: int = 1) -> None:
        """Adapt ``value`` to ``kl``, the mean summed KL (nats) of ``n_samples`` finished episodes."""


@dataclass
class FixedKLController:
    """A constant β.

    Args:
        value: The KL coefficient β ≥ 0.
    """

    value: float

    def __post_init__(self) -> None:
        _check_nonnegative("kl_coef", self.value)

    def update(self, kl: float, n_samples: int = 1) -> None:
        """Keep β as it is."""


@dataclass
class AdaptiveKLController:
    """β adapted towards a target KL, the proportional controller of Ziegler et al. (2019).

    After episodes with mean summed KL ``kl``: ``e = clip(kl / target - 1, -0.2, 0.2)`` and
    ``β ← β·(1 + e·n_samples / horizon)``. A KL above target raises β, below lowers it.

    Args:
        value: The starting β > 0.
        target: The target KL per episode, in nats (summed over the completion's tokens).
        horizon: How many episodes the controller takes to move β by about ``e``; larger is slower.
    """

    value: float
    target: float
    horizon: float = 10_000.0

    def __post_init__(self) -> None:
        _check_nonnegative("kl_coef", self.value)
        if self.value == 0:
            raise ConfigError("An adaptive KL controller needs kl_coef > 0 (β = 0 never changes); got 0.")
        if not (math.isfinite(self.target) and self.target > 0):
            raise ConfigError(f"target_kl must be a positive number of nats; got {self.target!r}.")
        if not (math.isfinite(self.horizon) and self.horizon > 0):
            raise ConfigError(f"kl_horizon must be a positive number of episodes; got {self.horizon!r}.")

    def update(self, kl: float, n_samples: int = 1) -> None:
        """Move β towards the value that would give ``target`` KL."""
        if not math.isfinite(kl):
            return
        error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + error * n_samples / self.horizon


def make_kl_controller(
    kl_coef: float, target_kl: float | None = None, horizon: float = 10_000.0
) -> FixedKLController | AdaptiveKLController:
    """A fixed controller, or an adaptive one when ``target_kl`` is given."""
    _check_nonnegative("kl_coef", kl_coef)
    if target_kl is None:
        return FixedKLController(float(kl_coef))
    return AdaptiveKLController(float(kl_coef), float(target_kl), float(horizon))


def _check_nonnegative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{name} must be a number ≥ 0; got {value!r} of type {type(value).__name__}.")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number ≥ 0 (0 turns the KL penalty off); got {value!r}.")


RECORD_METHOD = "record_policy_logprobs"


@dataclass(frozen=True, eq=False)
class LogProbMessage:
    """One step's message from the agent: windows, actions, ``log π`` of each, and optionally the masks.

    With the masks, the envs of one process score ``log π_ref`` of every row in one batched forward pass
    (see :class:`textenv.reference.BatchedReference`) instead of one pass per env.
    """

    input_ids: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    attention_mask: np.ndarray | None = None
    #: ``log π_ref(action | window)`` of each row, scored by the agent with ``reference``'s own weights.
    ref_logprobs: np.ndarray | None = None
    #: The reference model (the object) that scored ``ref_logprobs``; an env uses them only if it is its own.
    reference: Any = None

    def row(self, window: np.ndarray, action: int) -> int | None:
        """The index of the row whose window and action are ``window`` and ``action``, or ``None``."""
        for row in np.flatnonzero(self.actions == action):  # few rows share the action: compare only their windows
            if np.array_equal(self.input_ids[row], window):
                return int(row)
        return None


def logprob_message(
    input_ids: Any,
    actions: Any,
    logprobs: Any,
    attention_mask: Any = None,
    *,
    ref_logprobs: Any = None,
    reference: Any = None,
) -> LogProbMessage:
    """A checked :class:`LogProbMessage` of one step.

    Args:
        input_ids: The observed ``input_ids`` windows, shape ``(n, window)`` (or ``(window,)``).
        actions: The sampled token ids, shape ``(n,)``.
        logprobs: ``log π(action | window)`` for each row, shape ``(n,)``.
        attention_mask: The observed ``attention_mask`` windows (optional; lets the envs of one process score
            π_ref of every row in one batched forward).
        ref_logprobs: ``log π_ref(action | window)`` for each row, when the agent scored the reference itself
            with the very weights of the env's reference model (see the module docstring).
        reference: The env reference model (the object) that ``ref_logprobs`` come from. An env uses
            ``ref_logprobs`` only when this is its own model, and scores π_ref itself otherwise.

    Raises:
        ConfigError: The rows do not line up, or ``ref_logprobs`` come without their ``reference``.
    """
    message = _message(input_ids, actions, logprobs, attention_mask)
    if ref_logprobs is None:
        return message
    refs = np.asarray(ref_logprobs, dtype=np.float64).reshape(-1)
    if reference is None:
        raise ConfigError("ref_logprobs=... needs reference=<the env's reference model that scored them>.")
    if refs.shape != message.logprobs.shape:
        raise ConfigError(
            f"ref_logprobs need one value per row: {message.logprobs.shape[0]} rows, got {refs.shape[0]} values."
        )
    return dataclasses.replace(message, ref_logprobs=refs, reference=reference)


def _message(input_ids: Any, actions: Any, logprobs: Any, attention_mask: Any = None) -> LogProbMessage:
    ids = np.asarray(input_ids, dtype=np.int64)
    if ids.ndim == 1:
        ids = ids[None, :]
    acts = np.asarray(actions, dtype=np.int64).reshape(-1)
    lps = np.asarray(logprobs, dtype=np.float64).reshape(-1)
    if not (ids.shape[0] == acts.shape[0] == lps.shape[0]):
        raise ConfigError(
            f"A log-prob message needs one window, action and log-prob per row; got {ids.shape[0]} windows, "
            f"{acts.shape[0]} actions and {lps.shape[0]} log-probs."
        )
    mask = None if attention_mask is None else np.asarray(attention_mask, dtype=np.int64).reshape(ids.shape)
    return LogProbMessage(ids, acts, lps, mask)


def send_logprobs(
    env: Any,
    input_ids: Any,
    actions: Any = None,
    logprobs: Any = None,
    attention_mask: Any = None,
    *,
    ref_logprobs: Any = None,
    reference: Any = None,
) -> None:
    """Tell the env(s) the log-probabilities of the actions the agent is about to take.

    Call it once per step, after sampling and before ``step``. Works with a single env (wrapped or not), any
    stable-baselines3 ``VecEnv`` (its own ``send_logprobs`` where it has one, else ``env_method``, which reaches
    ``SubprocVecEnv`` workers), Ray actors (:class:`textenv.ray_vec_env.RayVecEnv`) and Gymnasium's ``VectorEnv``
    (``call``).

    Args:
        env: The env or vector env that will receive the actions.
        input_ids: The observed ``input_ids`` windows, shape ``(n, window)`` (or ``(window,)`` for one env); or
            a ready :class:`LogProbMessage` (then leave the other arguments out).
        actions, logprobs, attention_mask, ref_logprobs, reference: As for :func:`logprob_message`.
    """
    if isinstance(input_ids, LogProbMessage):
        message = input_ids
    else:
        message = logprob_message(
            input_ids, actions, logprobs, attention_mask, ref_logprobs=ref_logprobs, reference=reference
        )
    channel_of(env)(message)


def channel_of(env: Any) -> Callable[[LogProbMessage], None]:
    """The function that delivers a :class:`LogProbMessage` to every sub-env of ``env`` (see :func:`send_logprobs`)."""
    own = getattr(env, "send_logprobs", None)  # SB3's VecEnvWrapper forwards it from the env it wraps
    if callable(own):
        return own
    if hasattr(env, "env_method"):  # any stable-baselines3 VecEnv: DummyVecEnv, SubprocVecEnv, ...
        return lambda message: env.env_method(RECORD_METHOD, message)
    if hasattr(env, "call") and hasattr(env, "num_envs"):  # gymnasium.vector.VectorEnv
        return lambda message: env.call(RECORD_METHOD, message)
    base = getattr(env, "unwrapped", env)
    if not hasattr(base, RECORD_METHOD):
        raise ConfigError(
            f"{type(env).__name__} cannot take log-prob messages: give a textenv env, a vector env of them "
            "(textenv.vector.make_vec_env, SB3's DummyVecEnv/SubprocVecEnv, gymnasium's vector envs) or a RayVecEnv."
        )
    return getattr(base, RECORD_METHOD)
