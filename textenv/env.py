"""``TextGenEnv``: one completion of a prompt as one episode, one token per step."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rewards import RewardFn, ValidatedReward
from textenv.env_reward import resolve_env_reward
from textenv.errors import (
    ConfigError,
    InvalidActionError,
    KLChannelError,
    PromptError,
    ResetNeededError,
    UnscoredEpisodeWarning,
)
from textenv.kl import UNLOGGED_POLICIES, LogProbMessage, UnloggedPolicy, make_kl_controller
from textenv.model_cache import MODELS
from textenv.models import (
    DEFAULT_MODEL,
    check_tokenizer_fits,
    load_model_and_tokenizer,
    reference_copy,
    resolve_device,
)
from textenv.prompts import Prompt, PromptSource, load_prompts
from textenv.reference import ReferenceScorer, batched_reference
from textenv_common.checks import check_int

__all__ = ["StepResult", "TextGenEnv"]

ObsType = dict[str, np.ndarray]


@dataclass(frozen=True)
class StepResult:
    """What one step did, before the reward model has scored a finished episode."""

    token: int
    logprob: float
    ref_logprob: float
    kl: float
    kl_source: str
    ended: bool
    end_reason: str | None


class TextGenEnv(gym.Env[ObsType, np.int64]):
    """Generate a completion of a prompt one token at a time; the reward model scores the finished text.

    ## Description
    The context window of a causal language model as an environment: an episode is one completion of a prompt
    drawn from a prompt source, each step appends one token (the action) to the context, and the episode ends
    on the end-of-sequence token, a stop string or the token budget. The reward is the reward model's score of
    the finished completion minus a KL penalty that keeps the agent near a frozen reference model, as in RLHF
    (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022).

    ## Action Space
    ``Discrete(V)``, ``V`` the model's vocabulary size (``model.config.vocab_size``). An action is one token
    id,
    given as a Python or NumPy integer (a 0-d integer array is accepted); anything else raises
    :class:`~textenv.errors.InvalidActionError`.

    ## Observation Space
    A ``Dict`` of fixed-shape integer ``Box``es over a window of ``W = max_prompt_tokens + max_new_tokens``:

    | key                | shape  | meaning                                                                |
    |--------------------|--------|------------------------------------------------------------------------|
    | ``input_ids``      | (W,)   | prompt + completion so far, left-padded with the pad token id          |
    | ``attention_mask`` | (W,)   | 1 on real tokens, 0 on padding                                         |
    | ``completion_start``| (1,)  | index in the window of the first completion token (W before any)       |

    The text itself is in ``info`` (``prompt``, ``completion``), never in the observation.

    ## Rewards
    At step t: ``-β·(log π(a_t|s_t) - log π_ref(a_t|s_t))``, and at the last step also
    ``R(prompt, completion)``
    from the reward model, so the return is ``R - β·Σ_t KL_t``. π_ref is the frozen reference model; β is
    ``kl_coef``, fixed, or adaptive when ``target_kl`` is set (updated after each episode from its summed KL
    and held constant within an episode). ``log π`` comes from the agent through the log-prob channel
    (:func:`textenv.kl.send_logprobs`); without it ``unlogged_policy`` decides (see :mod:`textenv.kl`).
    ``log π_ref`` is scored by the env, unless the agent's message carries values scored with this env's own
    reference model (a policy built on its weights; see :mod:`textenv.kl`). ``info`` carries the parts: ``kl``,
    ``logprob``, ``ref_logprob``, ``kl_coef``, ``kl_source`` every step,
    and ``rm_score``, ``kl_sum``, ``prompt``, ``completion``, ``end_reason`` at the last step.

    ## Starting State
    A prompt sampled from the prompt source with ``self.np_random`` (or ``options={"prompt": "..."}``),
    tokenised with the model's tokenizer. A prompt longer than ``max_prompt_tokens`` keeps its last tokens (a
    warning says so) unless ``prompt_truncation="error"``; an empty prompt is refused.

    ## Episode End
    Terminated (never truncated: the reward model scores the finished completion, nothing is left to
    bootstrap) when the action is an end-of-sequence token, the completion text contains a stop string (the
    text handed to the reward model ends before it), or ``max_new_tokens`` tokens have been generated.

    ## Arguments
    - ``model``: a Hugging Face causal LM id or local folder (loaded with
      :func:`textenv.models.load_model_and_tokenizer` and shared by all envs of the process), or a loaded
      model (the env keeps a frozen copy as its reference). Default: SmolLM2-135M-Instruct.
    - ``prompts``: a prompt source (see :func:`textenv.prompts.load_prompts`): a list of strings, a JSONL or
      CSV file, a ``datasets`` folder, or ``"builtin:<name>"``. ``prompt_field`` names the text field.
    - ``reward``: a registered reward name (see ``rewards.names()``) with ``reward_kwargs``, the same as plain
      data ``{"reward": name, **config}`` (what the registered ids use, so that their specs serialise), or any
      callable ``reward(prompts, completions, **meta) -> scores``. Resolved once, here.
    - ``tokenizer``: needed when ``model`` is a loaded model; by default the model folder's own.
    - ``max_prompt_tokens``, ``max_new_tokens``, ``stop_strings``: the window and the episode's end.
    - ``kl_coef``, ``target_kl``, ``kl_horizon``: β and its adaptive controller; ``unlogged_policy``.
    - ``device``, ``dtype``: where and in which precision the reference model runs (``device="auto"``: CUDA
      where a GPU is visible). A reward given by name whose factory takes ``device`` (the learned, judge and
      similarity rewards) runs there too, unless ``reward_kwargs`` says otherwise.
    - ``render_mode``: ``"ansi"`` (``render()`` returns the text) or ``"human"`` (printed every step).

    ## Version History
    - v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "render_fps": 4}  # noqa: RUF012 (as in Gymnasium)

    def __init__(
        self,
        model: str | os.PathLike[str] | Any = DEFAULT_MODEL,
        prompts: Any = None,
        reward: str | Mapping[str, Any] | RewardFn | None = None,
        *,
        reward_kwargs: Mapping[str, Any] | None = None,
        tokenizer: str | Any | None = None,
        prompt_field: str = "prompt",
        max_prompt_tokens: int = 64,
        max_new_tokens: int = 32,
        stop_strings: Sequence[str] = (),
        kl_coef: float = 0.05,
        target_kl: float | None = None,
        kl_horizon: float = 10_000.0,
        unlogged_policy: UnloggedPolicy = "uniform",
        prompt_truncation: Literal["left", "error"] = "left",
        device: str = "cpu",
        dtype: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        if prompts is None or reward is None:
            missing = " and ".join(n for n, v in (("prompts", prompts), ("reward", reward)) if v is None)
            raise ConfigError(
                f"TextGenEnv needs {missing}: pass e.g. prompts=['Once upon a time'] and reward='length' "
                "(see rewards.names()), or use a registered task such as textenv/Sentiment-v0."
            )
        check_int("max_prompt_tokens", max_prompt_tokens, 1, error=ConfigError)
        check_int("max_new_tokens", max_new_tokens, 1, error=ConfigError)
        if unlogged_policy not in UNLOGGED_POLICIES:
            raise ConfigError(f"unlogged_policy must be one of {UNLOGGED_POLICIES}; got {unlogged_policy!r}.")
        if prompt_truncation not in ("left", "error"):
            raise ConfigError(f"prompt_truncation must be 'left' or 'error'; got {prompt_truncation!r}.")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            # Not an error: stable-baselines3's make_vec_env asks every env for "rgb_array".
            warnings.warn(
                f"render_mode={render_mode!r} is not supported by a text env; rendering is off. "
                f"Use one of {self.metadata['render_modes']}.",
                stacklevel=2,
            )
            render_mode = None
        if isinstance(stop_strings, str) or not all(isinstance(s, str) and s for s in stop_strings):
            raise ConfigError(f"stop_strings must be a list of non-empty strings; got {stop_strings!r}.")

        self.render_mode = render_mode
        self.max_prompt_tokens = int(max_prompt_tokens)
        self.max_new_tokens = int(max_new_tokens)
        self.window = self.max_prompt_tokens + self.max_new_tokens
        self.stop_strings = tuple(stop_strings)
        self.unlogged_policy = unlogged_policy
        self.prompt_truncation = prompt_truncation
        self.kl_controller = make_kl_controller(kl_coef, target_kl, kl_horizon)
        self.device = str(resolve_device(device))
        device = self.device

        # A model given by name is reloaded (from the process-wide cache) after unpickling; an object travels.
        self._model_spec: tuple[str, str | None, str | None, str] | None = None
        if isinstance(model, (str, os.PathLike)):
            if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
                raise ConfigError("With model given by name, give tokenizer by name too (or leave it None).")
            tok_name = None if tokenizer is None else os.fspath(tokenizer)
            self._model_spec = (os.fspath(model), tok_name, dtype, device)
            self.model, self.tokenizer = MODELS.load(os.fspath(model), tokenizer=tok_name, dtype=dtype, device=device)
        else:
            if tokenizer is None:
                raise ConfigError(
                    f"A loaded model ({type(model).__name__}) needs its tokenizer: pass tokenizer=... "
                    "(a tokenizer object or a folder), or pass the model by name or folder instead."
                )
            if isinstance(tokenizer, (str, os.PathLike)):
                _, tokenizer = load_model_and_tokenizer(tokenizer)
            check_tokenizer_fits(model, tokenizer)
            self.model, self.tokenizer = reference_copy(model), tokenizer
        self._reference = ReferenceScorer(self.model)

        n_positions = _max_positions(self.model.config)
        if n_positions is not None and self.window > n_positions:
            raise ConfigError(
                f"max_prompt_tokens + max_new_tokens = {self.window} exceeds the model's "
                f"{n_positions} positions; lower one of them."
            )
        self.vocab_size = int(self.model.config.vocab_size)
        self.pad_token_id = int(self.tokenizer.pad_token_id)
        self.eos_token_ids = _eos_ids(self.model, self.tokenizer)

        self.prompts: PromptSource = load_prompts(prompts, field=prompt_field)
        self.reward_fn: ValidatedReward = resolve_env_reward(reward, reward_kwargs, self.device)

        self.action_space = spaces.Discrete(self.vocab_size)
        high = max(self.vocab_size - 1, 0)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "input_ids": spaces.Box(0, high, shape=(self.window,), dtype=np.int64),
                "attention_mask": spaces.Box(0, 1, shape=(self.window,), dtype=np.int64),
                "completion_start": spaces.Box(0, self.window, shape=(1,), dtype=np.int64),
            }
        )

        self._prompt: Prompt | None = None
        self._prompt_ids: list[int] = []
        self._completion_ids: list[int] = []
        self._done = True
        self._started = False
        self._warned_unscored = False  # UnscoredEpisodeWarning: once per env
        self._kl_coef = self.kl_controller.value
        self._kl_sum = 0.0
        self._last_info: dict[str, Any] = {}
        self._logprob_msg: LogProbMessage | None = None
        self._pending_score: float | None = None
        self._pending_parts: dict[str, float] = {}

    # ------------------------------------------------------------------ the Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start a completion of a new prompt (``options={"prompt": text}`` picks it instead of sampling)."""
        super().reset(seed=seed)
        options = dict(options or {})
        if "prompt" in options:
            text = options.pop("prompt")
            if not isinstance(text, str):
                raise PromptError(f"options['prompt'] must be a string; got {type(text).__name__}.")
            prompt = Prompt(text, dict(options.pop("meta", {})))
        else:
            prompt = self.prompts.sample(self.np_random)
        if options:
            raise ConfigError(f"Unknown reset options {sorted(options)}; known: 'prompt', 'meta'.")
        if self._started and not self._done and self._completion_ids and not self._warned_unscored:
            self._warn_unscored()
        self._prompt = prompt
        self._prompt_ids = self._encode_prompt(prompt.text)
        self._completion_ids = []
        self._done, self._started = False, True
        self._kl_coef = float(self.kl_controller.value)
        self._kl_sum = 0.0
        self._logprob_msg = None
        self._pending_score = None
        info = {"prompt": prompt.text, "kl_coef": self._kl_coef, "prompt_tokens": len(self._prompt_ids)}
        self._last_info = info
        if self.render_mode == "human":
            self.render()
        return self._observation(), dict(info)

    def step(self, action: Any) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        """Append the token ``action``; see the class docstring for the reward and the episode's end."""
        result = self._advance(action)
        score = None
        if result.ended:
            score, self._pending_score = self._pending_score, None
            if score is None:
                prompts, completions, meta = self.reward_inputs()
                score = float(self.reward_fn(prompts, completions, **meta)[0])
                self._pending_parts = {k: float(v[0]) for k, v in getattr(self.reward_fn, "last_parts", {}).items()}
        return self._conclude(result, score)

    def render(self) -> str | None:
        """The prompt, the completion so far and the reward parts, as text."""
        if self.render_mode is None:
            gym.logger.warn("render() without render_mode: pass render_mode='ansi' or 'human' to the env.")
            return None
        text = self._render_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    # ------------------------------------------------------------------ the log-prob channel
    def record_policy_logprobs(self, message: LogProbMessage) -> None:
        """Receive the agent's ``log π`` for the actions it is about to send (see :mod:`textenv.kl`).

        The message holds one row per env of a batch; this env keeps it until its next ``step`` and uses the
        row whose window and action match its own. Use :func:`textenv.kl.send_logprobs` to send one.
        """
        if not isinstance(message, LogProbMessage):
            raise TypeError(
                f"record_policy_logprobs takes a textenv.kl.LogProbMessage (use textenv.kl.send_logprobs); "
                f"got {type(message).__name__}."
            )
        self._logprob_msg = message

    # ------------------------------------------------------------------ batched reward scoring
    def preview(self, action: Any) -> tuple[list[str], list[str], dict[str, list[Any]]] | None:
        """The reward model's inputs if ``action`` would end the episode, else ``None``; changes nothing.

        A vector env previews every sub-env, scores all episodes that end in this step with one reward call,
        hands each its score with :meth:`provide_score`, then steps them (see :mod:`textenv.vector`).
        """
        self._check_started()
        token = self._as_token(action)
        if self._end_reason([*self._completion_ids, token]) is None:
            return None
        return self.reward_inputs([*self._completion_ids, token])

    def provide_score(self, score: float, parts: Mapping[str, float] | None = None) -> None:
        """Give the score (and its parts) of the episode that the next ``step`` ends (see :meth:`preview`)."""
        self._pending_score = float(score)
        self._pending_parts = dict(parts or {})

    # ------------------------------------------------------------------ the step, in two halves
    def _warn_unscored(self) -> None:
        self._warned_unscored = True
        name = self.spec.id if self.spec is not None else type(self).__name__
        warnings.warn(
            f"{name}: reset after {len(self._completion_ids)} of max_new_tokens={self.max_new_tokens} tokens, before "
            "the completion ended, so the reward model never scored it and the adaptive KL controller did not count "
            "it. Gymnasium's TimeLimit cuts episodes this way when max_episode_steps < max_new_tokens: limit the "
            "completion with max_new_tokens instead, or set max_episode_steps ≥ max_new_tokens. (Warned once per "
            "env.)",
            UnscoredEpisodeWarning,
            stacklevel=3,
        )

    def _check_started(self) -> None:
        if not self._started:
            raise ResetNeededError("step() was called before reset(): call env.reset() first.")
        if self._done:
            raise ResetNeededError("step() was called after the episode ended: call env.reset() to start another.")

    def _end_reason(self, completion_ids: list[int]) -> str | None:
        if completion_ids and completion_ids[-1] in self.eos_token_ids:
            return "eos"
        if self.stop_strings:
            text = self._decode(completion_ids, strip_stop=False)
            if any(s in text for s in self.stop_strings):
                return "stop"
        if len(completion_ids) >= self.max_new_tokens:
            return "length"
        return None

    def _advance(self, action: Any) -> StepResult:
        self._check_started()
        token = self._as_token(action)
        logprob, source, message, row = self._policy_logprob(token)
        if message is not None and row is not None and message.reference is self.model:
            # The agent scored π_ref with this env's own reference weights (see textenv.kl).
            ref_logprob = float(message.ref_logprobs[row])  # type: ignore[index]
        elif message is not None and row is not None and message.attention_mask is not None:
            # One batched, KV-cached forward for every row of the message, shared by this process's envs.
            ref_logprob = float(batched_reference(self.model).logprobs(message)[row, token])
        else:
            context = self._prompt_ids + self._completion_ids
            ref_logprob = float(self._reference.next_logprobs(context)[token])
        kl = 0.0 if source == "none" else logprob - ref_logprob
        self._completion_ids.append(token)
        self._kl_sum += kl
        end_reason = self._end_reason(self._completion_ids)
        self._done = end_reason is not None
        return StepResult(token, logprob, ref_logprob, kl, source, self._done, end_reason)

    def reward_inputs(
        self, completion_ids: list[int] | None = None
    ) -> tuple[list[str], list[str], dict[str, list[Any]]]:
        """The reward model's inputs for this episode: ``([prompt], [completion], meta)``."""
        if self._prompt is None:
            raise ResetNeededError("No episode yet: call env.reset() first.")
        ids = self._completion_ids if completion_ids is None else completion_ids
        meta = {key: [value] for key, value in self._prompt.meta.items()}
        return [self._prompt.text], [self._decode(ids)], meta

    def _conclude(self, result: StepResult, score: float | None) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        reward = -self._kl_coef * result.kl
        info: dict[str, Any] = {
            "kl": result.kl,
            "logprob": result.logprob,
            "ref_logprob": result.ref_logprob,
            "kl_coef": self._kl_coef,
            "kl_source": result.kl_source,
            "n_tokens": len(self._completion_ids),
        }
        if result.ended:
            if score is None or not math.isfinite(score):
                raise ValueError(f"conclude() of a finished episode needs a finite reward score; got {score!r}.")
            reward += score
            assert self._prompt is not None
            info.update(
                rm_score=score,
                kl_sum=self._kl_sum,
                prompt=self._prompt.text,
                completion=self._decode(self._completion_ids),
                end_reason=result.end_reason,
            )
            if self._pending_parts:  # a combinator's parts (e.g. each term of a weighted sum)
                info["rm_parts"] = self._pending_parts
                self._pending_parts = {}
            self.kl_controller.update(self._kl_sum, 1)
        self._last_info = info
        self._logprob_msg = None
        if self.render_mode == "human":
            self.render()
        return self._observation(), float(reward), result.ended, False, info

    # ------------------------------------------------------------------ helpers
    @property
    def prompt(self) -> str | None:
        """The current episode's prompt text."""
        return None if self._prompt is None else self._prompt.text

    @property
    def completion_ids(self) -> list[int]:
        """The tokens generated so far in this episode."""
        return list(self._completion_ids)

    def _encode_prompt(self, text: str) -> list[int]:
        if not text.strip():
            raise PromptError(
                f"Empty prompt {text!r} (from {self.prompts.name}): every prompt needs some text to continue."
            )
        ids = list(self.tokenizer(text)["input_ids"])
        if not ids:
            raise PromptError(f"The prompt {text!r} tokenises to no tokens; give it some text.")
        if len(ids) > self.max_prompt_tokens:
            if self.prompt_truncation == "error":
                raise PromptError(
                    f"The prompt {text[:60]!r}... has {len(ids)} tokens, over max_prompt_tokens="
                    f"{self.max_prompt_tokens}: raise max_prompt_tokens, shorten the prompt, or pass "
                    "prompt_truncation='left' to keep its last tokens."
                )
            warnings.warn(
                f"Prompt of {len(ids)} tokens truncated from the left to max_prompt_tokens="
                f"{self.max_prompt_tokens} (its end, next to the completion, is kept).",
                stacklevel=3,
            )
            ids = ids[-self.max_prompt_tokens :]
        return ids

    def _observation(self) -> ObsType:
        context = self._prompt_ids + self._completion_ids
        ids = np.full(self.window, self.pad_token_id, dtype=np.int64)
        mask = np.zeros(self.window, dtype=np.int64)
        ids[self.window - len(context) :] = context
        mask[self.window - len(context) :] = 1
        start = np.array([self.window - len(self._completion_ids)], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask, "completion_start": start}

    def _as_token(self, action: Any) -> int:
        arr = np.asarray(action) if not isinstance(action, (str, bytes)) else None
        if arr is None or arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidActionError(
                f"The action must be an integer token id in [0, {self.vocab_size}); got {action!r} "
                f"({type(action).__name__}). Pass an int such as env.action_space.sample()."
            )
        if arr.shape != ():
            raise InvalidActionError(
                f"The action must be one token id (a scalar); got an array of shape {arr.shape}. "
                "Pass one integer per step (a vector env takes one per sub-env)."
            )
        token = int(arr)
        if not 0 <= token < self.vocab_size:
            raise InvalidActionError(
                f"Token id {token} is outside the vocabulary [0, {self.vocab_size}) of this env's model."
            )
        return token

    def _policy_logprob(self, token: int) -> tuple[float, str, LogProbMessage | None, int | None]:
        """``(log π, source, message, row)``: from the message sent with this step's action, or the fallback."""
        message = self._logprob_msg
        if message is not None:
            row = message.row(self._observation()["input_ids"], token)
            if row is not None:
                return float(message.logprobs[row]), "policy", message, row
            warnings.warn(
                "A log-prob message was sent to this env but no row matches its window and action; "
                "send the windows exactly as observed (obs['input_ids']).",
                stacklevel=4,
            )
        if self.unlogged_policy == "uniform":
            return -math.log(self.vocab_size), "uniform", None, None
        if self.unlogged_policy == "zero":
            return math.nan, "none", None, None
        raise KLChannelError(
            "This step came without the policy's log-probability and unlogged_policy='error': call "
            "textenv.kl.send_logprobs(env, obs['input_ids'], actions, logprobs) before each step (agents.LMPolicy "
            "does, once connected to the env: learn with callback=agents.ConnectLogProbs())."
        )

    def _decode(self, ids: list[int], strip_stop: bool = True) -> str:
        if ids and ids[-1] in self.eos_token_ids:
            ids = ids[:-1]
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
        if strip_stop:
            cuts = [text.find(s) for s in self.stop_strings if s in text]
            if cuts:
                text = text[: min(cuts)]
        return text

    def _render_text(self) -> str:
        if self._prompt is None:
            return "(no episode yet: call reset())"
        info = self._last_info
        status = f"tokens {len(self._completion_ids)}/{self.max_new_tokens}  KL {self._kl_sum:+.3f}"
        status += f"  β {self._kl_coef:.4g}"
        if "rm_score" in info:
            status += f"  reward-model {info['rm_score']:+.3f}  ({info['end_reason']})"
        return f"{self._prompt.text}\u2502{self._decode(self._completion_ids, False)}\n[{status}]"

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._model_spec is not None:
            for key in ("model", "tokenizer", "_reference"):
                state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._model_spec is not None:
            name, tok_name, dtype, device = self._model_spec
            self.model, self.tokenizer = MODELS.load(name, tokenizer=tok_name, dtype=dtype, device=device)
            self._reference = ReferenceScorer(self.model)


def _max_positions(config: Any) -> int | None:
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (
        tokenizer.eos_token_id,
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return frozenset(ids)
