"""``RayVecEnv``: a stable-baselines3 ``VecEnv`` whose sub-envs live in Ray actors, scored by one reward actor.

Each **env actor** holds one or several sub-envs (``envs_per_actor``); actors may sit on any node of the
cluster, so nothing here assumes a shared filesystem or process: an actor builds its envs itself from the env id
and keyword arguments. One **reward actor** holds the only copy of the reward model (on a GPU with
``reward_num_gpus=1``) and scores the episodes of every actor that end in a step in one call. A step is the
design of :class:`textenv.vector.TextVecEnv`, spread over actors:

1. ``step_async`` sends each actor its actions; the actor answers which of its episodes they end, with the
   reward model's inputs (:meth:`~textenv.env.TextGenEnv.preview`);
2. the reward actor scores all of them in one call;
3. each actor gets its scores (:meth:`~textenv.env.TextGenEnv.provide_score`), the agent's log-prob message and
   β in one call, steps its envs and resets the finished ones.

The env actors never load the reward model: their envs are built with a placeholder reward that raises
:class:`~textenv.errors.ScoreMissingError` if it is ever called, i.e. if an episode ended without its score.

**The log-prob channel.** :meth:`RayVecEnv.send_logprobs` (or :func:`textenv.kl.send_logprobs`, which goes
through ``env_method``) holds the message in the driver; the next step ships each actor the rows of its own
sub-envs with its actions. Only ``log π`` travels: log π_ref values scored by the agent with *its* copy of the
reference (``ref_logprobs``/``reference``) cannot name an actor's model, so the actor scores π_ref itself. With
attention masks in the message an actor scores π_ref for its own rows in one batched forward, so the values equal
``TextVecEnv``'s (whose batch holds every row) up to float32 rounding; without masks they are equal bit for bit.

**β.** The driver owns the KL controller. An adaptive β is updated from every sub-env's finished episodes, in
sub-env order, and the new value reaches the actors with the next step; an episode that starts in the step
that updated β therefore uses the value from before that step (one step later than in ``TextVecEnv``).

**Faults.** When an env actor dies (a node lost, ``ray.kill``, out of memory), the next call that reaches it
notices, and the driver starts a new actor in its place (up to ``max_restarts`` times per actor, then
:class:`~textenv.errors.RayWorkerLostError`), resets its sub-envs with fresh seeds, and reports their open
episodes as ended in that step: ``done=True`` with ``info["TimeLimit.truncated"] = True`` (so stable-baselines3
bootstraps from ``info["terminal_observation"]``, the last observation the driver saw), ``info["worker_lost"] =
True`` and reward 0, with a warning. The actions sent to those sub-envs in that step are not applied. The other
actors' results of the step are kept. A dead reward actor is restarted and the batch scored again; a reward with
running state (normalisation) starts that state afresh.
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from textenv.errors import ConfigError, MissingExtraError, RayAddressError, RayWorkerLostError, ScoreMissingError
from textenv.kl import RECORD_METHOD, LogProbMessage
from textenv_common.checks import check_int

__all__ = ["RayVecEnv", "connect"]

INSTALL_HINT = "pip install 'textenv[ray]'"

# What the reward model needs of one finished episode: ([prompt], [completion], meta), as TextGenEnv.preview gives.
RewardInputs = tuple[list[str], list[str], dict[str, list[Any]]]
# One sub-env's score and its parts (a combinator's terms).
Scored = tuple[float, dict[str, float]]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError(
            f"RayVecEnv needs Ray, which is not installed in this Python: {INSTALL_HINT} (or pip install ray)."
        ) from exc
    return ray


def connect(address: str | None = None, **init_kwargs: Any) -> None:
    """Connect this process to a Ray cluster, unless it already is.

    Args:
        address: ``None`` (a cluster named by ``RAY_ADDRESS``, or a new local one), ``"auto"`` (the cluster this
            machine joined with ``ray start``), ``"local"`` (always a new local one), ``"HOST:PORT"`` (the head
            node's GCS port, 6379 by default) or ``"ray://HOST:PORT"`` (Ray Client, port 10001 by default).
        **init_kwargs: Passed on to ``ray.init`` (e.g. ``num_cpus``, ``include_dashboard``).

    Raises:
        MissingExtraError: Ray is not installed.
        RayAddressError: ``address`` is malformed, nothing listens there, or Ray cannot connect to it.
        ConfigError: This process is already connected and ``address`` asks for a cluster.
    """
    ray = _import_ray()
    if address is not None:
        _check_address(address)
    if ray.is_initialized():
        if address is not None:
            raise ConfigError(
                f"Ray is already connected in this process, so address={address!r} cannot apply: leave "
                "address=None to use that connection, or call ray.shutdown() first."
            )
        return
    try:
        ray.init(address=address, **init_kwargs)
    except ConnectionError as exc:
        raise RayAddressError(
            f"No Ray cluster could be reached at address={address!r} ({exc}). Start one with `ray start --head` "
            "on the head node (it prints the address), or pass address=None for a local cluster."
        ) from exc


def _check_address(address: str) -> None:
    """Refuse a malformed address at once, and probe ``HOST:PORT`` (Ray itself retries for minutes)."""
    if not isinstance(address, str):
        raise RayAddressError(f"A Ray address is a string; got {address!r} of type {type(address).__name__}.")
    if address in ("auto", "local"):
        return
    rest = address.removeprefix("ray://")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RayAddressError(
            f"{address!r} is not a Ray address: pass 'auto' (the cluster this machine joined with `ray start`), "
            "'local', 'HOST:PORT' of the head node (port 6379 by default) or 'ray://HOST:PORT' (Ray Client)."
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=5.0):
            pass
    except OSError as exc:
        raise RayAddressError(
            f"Nothing answers at the Ray address {address!r} ({exc}). Start the head node with "
            f"`ray start --head --port {port_text}`, or check the address that `ray status` prints there."
        ) from exc


# ---------------------------------------------------------------------------------------------------- in the actors
class _ScoredByRewardActor:
    """The reward of a sub-env inside an env actor: scores arrive from the reward actor, so it never runs."""

    name = "scored_by_reward_actor"

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
        raise ScoreMissingError(
            f"An episode of a RayVecEnv sub-env ended without its score from the reward actor (completion "
            f"{completions[0][:60]!r}). Step the env through RayVecEnv.step, which previews and scores every "
            "ending episode first, not through env_method('step', ...)."
        )


@dataclass
class _RelayKLController:
    """β as the driver's KL controller last set it; the driver, not the actor, updates it."""

    value: float

    def update(self, kl: float, n_samples: int = 1) -> None:
        """Leave β to the driver, which sees every actor's episodes."""


def _build_reward(env_id: str, env_kwargs: Mapping[str, Any], device: str | None) -> Any:
    """The env's reward, resolved as the env would resolve it, on ``device`` (default: the env's ``device``)."""
    from textenv.env_reward import resolve_env_reward
    from textenv.models import resolve_device
    from textenv.registration import make

    merged = {**gym.spec(env_id).kwargs, **env_kwargs}
    device = str(resolve_device(device if device is not None else merged.get("device", "cpu")))
    reward = merged.get("reward")
    if reward is None:  # the env picks its reward itself (textenv/Summarize-v0): build one to learn which
        return make(env_id, **{**env_kwargs, "device": device}).unwrapped.reward_fn  # type: ignore[attr-defined]
    return resolve_env_reward(reward, merged.get("reward_kwargs"), device)


class _RewardWorker:
    """The reward actor: the one copy of the reward model, scoring every actor's finished episodes."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], device: str | None) -> None:
        import textenv  # noqa: F401 (registers the env ids in this process)

        self.reward_fn = _build_reward(env_id, env_kwargs, device)

    def score(self, batch: list[RewardInputs]) -> list[Scored]:
        """Score all episodes in one call (in groups when their prompts carry different metadata fields)."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (_, _, meta) in enumerate(batch):
            groups.setdefault(tuple(sorted(meta)), []).append(i)
        out: list[Scored | None] = [None] * len(batch)
        for keys, members in groups.items():
            prompts = [batch[i][0][0] for i in members]
            completions = [batch[i][1][0] for i in members]
            meta = {key: [batch[i][2][key][0] for i in members] for key in keys}
            scores = np.asarray(self.reward_fn(prompts, completions, **meta))
            parts = getattr(self.reward_fn, "last_parts", {})
            for j, i in enumerate(members):
                out[i] = (float(scores[j]), {k: float(v[j]) for k, v in parts.items()})
        return [scored for scored in out if scored is not None]


class _EnvWorker:
    """An env actor: a few sub-envs, built here from the env id (no shared filesystem or process needed)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], n_envs: int, monitor: bool) -> None:
        from textenv.registration import make

        kwargs = {k: v for k, v in env_kwargs.items() if k not in ("reward", "reward_kwargs", "reward_model")}
        self.envs: list[gym.Env[Any, Any]] = []
        self.kl_controller: Any = None
        for _ in range(n_envs):
            env = make(env_id, reward=_ScoredByRewardActor(), **kwargs)
            base: Any = env.unwrapped
            if self.kl_controller is None:  # the controller as the env built it: the driver takes it over
                self.kl_controller = base.kl_controller
                self.relay = _RelayKLController(float(self.kl_controller.value))
            base.kl_controller = self.relay
            self.envs.append(Monitor(env) if monitor else env)

    def spaces(self) -> tuple[gym.Space[Any], gym.Space[Any], Any]:
        """The observation space, the action space and the env's own KL controller."""
        return self.envs[0].observation_space, self.envs[0].action_space, self.kl_controller

    def reset(self, seeds: list[int | None], options: list[dict[str, Any]], beta: float) -> list[Any]:
        """Reset every sub-env; ``[(obs, info), ...]``."""
        self.relay.value = beta
        return [
            env.reset(seed=seed, **({"options": opts} if opts else {}))
            for env, seed, opts in zip(self.envs, seeds, options, strict=True)
        ]

    def preview(self, actions: np.ndarray) -> list[RewardInputs | None]:
        """The reward inputs of each sub-env whose episode its action ends (else ``None``)."""
        return [env.unwrapped.preview(action) for env, action in zip(self.envs, actions, strict=True)]  # type: ignore[attr-defined]

    def step(
        self, actions: np.ndarray, scores: list[Scored | None], messages: list[LogProbMessage | None], beta: float
    ) -> list[tuple[Any, float, bool, dict[str, Any], dict[str, Any] | None]]:
        """Step every sub-env (auto-resetting finished ones); ``[(obs, reward, done, info, reset_info), ...]``."""
        self.relay.value = beta
        out = []
        for env, action, scored, message in zip(self.envs, actions, scores, messages, strict=True):
            base: Any = env.unwrapped
            if scored is not None:
                base.provide_score(*scored)
            if message is not None:
                base.record_policy_logprobs(message)
            obs, reward, terminated, truncated, info = env.step(action)
            info["TimeLimit.truncated"] = truncated and not terminated
            reset_info = None
            if terminated or truncated:
                info["terminal_observation"] = obs
                obs, reset_info = env.reset()
            out.append((obs, float(reward), bool(terminated or truncated), info, reset_info))
        return out

    def get_attr(self, name: str, local: list[int]) -> list[Any]:
        """``name`` of the given sub-envs (looked up through their wrappers)."""
        return [self.envs[i].get_wrapper_attr(name) for i in local]

    def set_attr(self, name: str, value: Any, local: list[int]) -> None:
        """Set ``name`` on the given sub-envs."""
        for i in local:
            setattr(self.envs[i], name, value)

    def env_method(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], local: list[int]) -> list[Any]:
        """Call the method ``name`` of the given sub-envs."""
        return [self.envs[i].get_wrapper_attr(name)(*args, **kwargs) for i in local]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], local: list[int]) -> list[bool]:
        """Whether each given sub-env is wrapped in ``wrapper_class``."""
        from stable_baselines3.common.env_util import is_wrapped

        return [is_wrapped(self.envs[i], wrapper_class) for i in local]


# ---------------------------------------------------------------------------------------------------- the driver
class RayVecEnv(VecEnv):
    """``n_envs`` copies of a registered text env in Ray actors, with one batched reward-model actor.

    See the module docstring for the step, the log-prob channel and the behaviour when an actor dies.

    Args:
        env_id: A registered id, e.g. ``"textenv/Toy-v0"``.
        n_envs: Number of sub-envs (rows of each batch).
        seed: Seed of the first sub-env; sub-env ``i`` gets ``seed + i``, as with :func:`textenv.vector.make_vec_env`.
        envs_per_actor: Sub-envs per env actor (the last actor may hold fewer).
        num_cpus: CPUs reserved by each env actor (fractions allowed).
        num_gpus: GPUs reserved by each env actor (for the reference model; pass ``device="cuda"`` too).
        reward_num_cpus: CPUs reserved by the reward actor.
        reward_num_gpus: GPUs reserved by the reward actor.
        reward_device: Where the reward actor runs a model-based reward (default: the env's ``device``).
        monitor: Wrap each sub-env in stable-baselines3's ``Monitor`` (episode return and length in info).
        max_restarts: How many times each env actor is replaced after dying before the env gives up with
            :class:`~textenv.errors.RayWorkerLostError`.
        address: The cluster to connect to when this process is not connected yet (see :func:`connect`).
        **env_kwargs: Overrides of the env's defaults, as for ``gym.make``.
    """

    def __init__(
        self,
        env_id: str,
        n_envs: int = 1,
        *,
        seed: int | None = None,
        envs_per_actor: int = 1,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        reward_num_cpus: float = 1.0,
        reward_num_gpus: float = 0.0,
        reward_device: str | None = None,
        monitor: bool = True,
        max_restarts: int = 3,
        address: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        check_int("n_envs", n_envs, 1, error=ConfigError)
        check_int("envs_per_actor", envs_per_actor, 1, error=ConfigError)
        check_int("max_restarts", max_restarts, 0, error=ConfigError)
        for name, amount in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("reward_num_cpus", reward_num_cpus),
                             ("reward_num_gpus", reward_num_gpus)):  # fmt: skip
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount >= 0:
                raise ConfigError(f"{name} must be a number ≥ 0; got {amount!r}.")
        from textenv.registration import make

        if env_id not in gym.registry:  # fail here, with the close matches, before any actor starts
            make(env_id)
        connect(address)
        self._ray = _import_ray()
        self.env_id, self.env_kwargs, self.monitor = env_id, dict(env_kwargs), bool(monitor)
        self.max_restarts = max_restarts
        self._env_options = {"num_cpus": float(num_cpus), "num_gpus": float(num_gpus)}
        self._slots = [list(range(s, min(s + envs_per_actor, n_envs))) for s in range(0, n_envs, envs_per_actor)]
        self._reward_options = {"num_cpus": float(reward_num_cpus), "num_gpus": float(reward_num_gpus)}
        self._reward_device = reward_device
        self._reward_actor = self._start_reward_actor()
        self._actors = [self._start_env_actor(slot) for slot in self._slots]
        self._restarts = [0] * len(self._actors)
        observation_space, action_space, self.kl_controller = self._get(self._actors[0].spaces.remote())
        if not isinstance(observation_space, gym.spaces.Dict):
            raise ConfigError(f"RayVecEnv runs text envs (a Dict observation); {env_id} has {observation_space}.")
        self._obs = {
            key: np.zeros((n_envs, *(space.shape or ())), dtype=space.dtype)
            for key, space in observation_space.spaces.items()
        }
        self._messages: list[LogProbMessage | None] = [None] * n_envs
        self._fresh: dict[int, list[tuple[Any, dict[str, Any]]]] = {}  # replaced actors: their envs' reset results
        self._previews: dict[int, Any] = {}
        self._actions = np.zeros(n_envs, dtype=np.int64)
        self._base_seed: int | None = None
        super().__init__(n_envs, observation_space, action_space)
        if seed is not None:
            self.seed(seed)

    # ------------------------------------------------------------------ actors
    def _start_env_actor(self, slot: list[int]) -> Any:
        cls = self._ray.remote(_EnvWorker).options(max_restarts=0, **self._env_options)
        return cls.remote(self.env_id, self.env_kwargs, len(slot), self.monitor)

    def _start_reward_actor(self) -> Any:
        cls = self._ray.remote(_RewardWorker).options(max_restarts=0, **self._reward_options)
        return cls.remote(self.env_id, self.env_kwargs, self._reward_device)

    @property
    def actors(self) -> list[Any]:
        """The env actors' handles, in sub-env order (actor ``a`` holds sub-envs ``a*envs_per_actor, ...``)."""
        return list(self._actors)

    @property
    def reward_actor(self) -> Any:
        """The reward actor's handle."""
        return self._reward_actor

    def _get(self, ref: Any) -> Any:
        return self._ray.get(ref)

    def _is_lost(self, exc: BaseException) -> bool:
        return isinstance(exc, self._ray.exceptions.RayActorError)

    def _replace(self, a: int, exc: BaseException) -> None:
        """Start a new actor for the dead actor ``a``, reset its sub-envs and keep their reset results."""
        self._restarts[a] += 1
        slot = self._slots[a]
        if self._restarts[a] > self.max_restarts:
            raise RayWorkerLostError(
                f"The Ray actor of sub-envs {slot} died {self._restarts[a]} times, over max_restarts="
                f"{self.max_restarts} (last: {exc}). Check the actor's logs (`ray logs`), its memory and its node, "
                "or raise max_restarts."
            ) from exc
        warnings.warn(
            f"RayVecEnv: the actor of sub-envs {slot} died ({type(exc).__name__}); replaced it "
            f"({self._restarts[a]}/{self.max_restarts}). Its open episodes end as truncated (info['worker_lost']).",
            stacklevel=3,
        )
        self._ray.kill(self._actors[a])  # it may only be unreachable for now: make sure it never comes back
        self._actors[a] = self._start_env_actor(slot)
        k = self._restarts[a]
        seeds = [None if self._base_seed is None else self._base_seed + i + k * self.num_envs for i in slot]
        self._fresh[a] = self._get(self._actors[a].reset.remote(seeds, [{} for _ in slot], self.kl_controller.value))
        self._messages[slot[0] : slot[-1] + 1] = [None] * len(slot)

    def _call(self, a: int, method: str, *args: Any) -> Any:
        """One call of actor ``a``, replacing it (and calling the new one) if it has died."""
        try:
            return self._get(getattr(self._actors[a], method).remote(*args))
        except Exception as exc:
            if not self._is_lost(exc):
                raise
            self._replace(a, exc)
            return self._get(getattr(self._actors[a], method).remote(*args))

    # ------------------------------------------------------------------ the VecEnv API
    def reset(self) -> VecEnvObs:
        """Reset every sub-env (with the seeds of :meth:`seed` and options of ``set_options``, used once)."""
        beta = float(self.kl_controller.value)
        refs = [
            actor.reset.remote([self._seeds[i] for i in slot], [self._options[i] for i in slot], beta)
            for actor, slot in zip(self._actors, self._slots, strict=True)
        ]
        for a, ref in enumerate(refs):
            slot = self._slots[a]
            try:
                results = self._get(ref)
            except Exception as exc:
                if not self._is_lost(exc):
                    raise
                self._replace(a, exc)
                results = self._fresh.pop(a)
            for i, (obs, info) in zip(slot, results, strict=True):
                self._store(i, obs)
                self.reset_infos[i] = info
        self._fresh.clear()
        self._previews.clear()
        self._messages = [None] * self.num_envs
        self._reset_seeds()
        self._reset_options()
        return self._observations()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next :meth:`reset`: sub-env ``i`` gets ``seed + i`` (replaced actors get fresh seeds)."""
        self._base_seed = seed
        return super().seed(seed)

    def send_logprobs(self, message: LogProbMessage) -> None:
        """Hold the agent's log-prob message; the next step ships it with the actions (see the module docstring)."""
        if not isinstance(message, LogProbMessage):
            raise TypeError(
                f"send_logprobs takes a textenv.kl.LogProbMessage (see textenv.kl); got {type(message).__name__}."
            )
        self._messages = [message] * self.num_envs

    def step_async(self, actions: np.ndarray) -> None:
        """Send each actor its actions and ask which of its episodes they end."""
        self._actions = np.asarray(actions).reshape(self.num_envs)
        self._previews = {
            a: actor.preview.remote(self._actions[slot])
            for a, (actor, slot) in enumerate(zip(self._actors, self._slots, strict=True))
            if a not in self._fresh
        }

    def step_wait(self) -> VecEnvStepReturn:
        """Score this step's finished episodes in one reward-actor call, then step every actor."""
        n = self.num_envs
        rewards, dones = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        previews: dict[int, list[RewardInputs | None]] = {}
        for a, ref in self._previews.items():
            try:
                previews[a] = self._get(ref)
            except Exception as exc:
                if not self._is_lost(exc):
                    raise
                self._replace(a, exc)
        self._previews = {}

        ending = [(a, j, inputs) for a, p in previews.items() for j, inputs in enumerate(p) if inputs is not None]
        scored = self._score([inputs for _, _, inputs in ending]) if ending else []
        scores: dict[int, list[Scored | None]] = {a: [None] * len(self._slots[a]) for a in previews}
        for (a, j, _), result in zip(ending, scored, strict=True):
            scores[a][j] = result

        beta = float(self.kl_controller.value)
        refs = {
            a: self._actors[a].step.remote(self._actions[self._slots[a]], scores[a], self._outgoing(a), beta)
            for a in previews
        }
        for a, ref in refs.items():
            try:
                results = self._get(ref)
            except Exception as exc:
                if not self._is_lost(exc):
                    raise
                self._replace(a, exc)
                continue
            for i, (obs, reward, done, info, reset_info) in zip(self._slots[a], results, strict=True):
                rewards[i], dones[i], infos[i] = reward, done, info
                if reset_info is not None:
                    self.reset_infos[i] = reset_info
                self._store(i, obs)
        for a in sorted(self._fresh):  # actors replaced before or during this step: their episodes end here
            for i, (obs, info) in zip(self._slots[a], self._fresh.pop(a), strict=True):
                terminal = {key: buf[i].copy() for key, buf in self._obs.items()}
                rewards[i], dones[i] = 0.0, True
                infos[i] = {"TimeLimit.truncated": True, "terminal_observation": terminal, "worker_lost": True}
                self.reset_infos[i] = info
                self._store(i, obs)
        for i in range(n):  # β follows every finished episode, in sub-env order, as TextVecEnv's shared one does
            if dones[i] and "kl_sum" in infos[i]:
                self.kl_controller.update(float(infos[i]["kl_sum"]), 1)
        self._messages = [None] * n
        return self._observations(), rewards, dones, infos

    def _score(self, batch: list[RewardInputs]) -> list[Scored]:
        try:
            result: list[Scored] = self._get(self._reward_actor.score.remote(batch))
        except Exception as exc:
            if not self._is_lost(exc):
                raise
            warnings.warn(f"RayVecEnv: the reward actor died ({type(exc).__name__}); restarted it.", stacklevel=3)
            self._reward_actor = self._start_reward_actor()
            result = self._get(self._reward_actor.score.remote(batch))
        return result

    def _outgoing(self, a: int) -> list[LogProbMessage | None]:
        """The log-prob message of each sub-env of actor ``a``, cut down to the rows of this actor's sub-envs."""
        slot = self._slots[a]
        out: list[LogProbMessage | None] = [None] * len(slot)
        cut: dict[int, LogProbMessage] = {}
        for j, i in enumerate(slot):
            message = self._messages[i]
            if message is None:
                continue
            if id(message) not in cut:
                cut[id(message)] = _rows_for(message, [self._obs["input_ids"][k] for k in slot], self._actions[slot])
            out[j] = cut[id(message)]
        return out

    def close(self) -> None:
        """Stop the actors (the Ray connection stays; ``ray.shutdown()`` ends it)."""
        for actor in [*self._actors, self._reward_actor]:
            self._ray.kill(actor)
        self._actors = []

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of each sub-env (looked up through its wrappers, in its actor)."""
        return self._route(indices, lambda a, local: self._call(a, "get_attr", attr_name, local))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on each sub-env, in its actor."""
        self._route(indices, lambda a, local: self._call(a, "set_attr", attr_name, value, local) or [None] * len(local))

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of each sub-env, in its actor.

        ``record_policy_logprobs`` (what :func:`textenv.kl.send_logprobs` calls) is not a remote call: the
        message is held and shipped with the next step's actions.
        """
        if method_name == RECORD_METHOD and len(method_args) == 1 and not method_kwargs:
            message = method_args[0]
            if not isinstance(message, LogProbMessage):
                raise TypeError(f"{RECORD_METHOD} takes a textenv.kl.LogProbMessage; got {type(message).__name__}.")
            targets = list(self._get_indices(indices))
            for i in targets:
                self._messages[i] = message
            return [None] * len(targets)
        return self._route(
            indices, lambda a, local: self._call(a, "env_method", method_name, method_args, method_kwargs, local)
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Whether each sub-env is wrapped in ``wrapper_class``."""
        return self._route(indices, lambda a, local: self._call(a, "env_is_wrapped", wrapper_class, local))

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Text envs draw no images: ``None`` per sub-env (their ``render()`` gives text; see ``env_method``)."""
        warnings.warn(f"The render mode is {self.render_mode}; text envs give no images.", stacklevel=2)
        return [None] * self.num_envs

    # ------------------------------------------------------------------ helpers
    def _route(self, indices: VecEnvIndices, call: Any) -> list[Any]:
        """Run ``call(actor, local_indices)`` once per actor holding any of ``indices``; results in their order."""
        targets = list(self._get_indices(indices))
        by_actor: dict[int, list[int]] = {}
        for i in targets:
            a = next(a for a, slot in enumerate(self._slots) if i in slot)
            by_actor.setdefault(a, []).append(i)
        found: dict[int, Any] = {}
        for a, members in by_actor.items():
            local = [i - self._slots[a][0] for i in members]
            for i, value in zip(members, call(a, local), strict=True):
                found[i] = value
        return [found[i] for i in targets]

    def _store(self, i: int, obs: Mapping[str, np.ndarray]) -> None:
        for key, buf in self._obs.items():
            buf[i] = obs[key]

    def _observations(self) -> dict[str, np.ndarray]:
        return {key: buf.copy() for key, buf in self._obs.items()}


def _rows_for(message: LogProbMessage, windows: list[np.ndarray], actions: np.ndarray) -> LogProbMessage:
    """The rows of ``message`` that match these sub-envs' windows and actions, as a message of its own.

    When a sub-env finds no row, the whole message goes (its env then warns as it would in-process). Only
    ``log π`` travels: ``ref_logprobs`` were scored with the agent's reference object, never an actor's.
    """
    rows = [message.row(window, int(action)) for window, action in zip(windows, actions, strict=True)]
    if any(row is None for row in rows):
        return LogProbMessage(message.input_ids, message.actions, message.logprobs, message.attention_mask)
    idx = np.asarray(rows, dtype=np.int64)
    mask = None if message.attention_mask is None else message.attention_mask[idx]
    return LogProbMessage(message.input_ids[idx], message.actions[idx], message.logprobs[idx], mask)
