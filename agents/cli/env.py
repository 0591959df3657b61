"""``textenv list``, ``check`` and ``rollout``: what is registered, whether an env passes the checker, and a few
episodes of an env with its reference model as the agent."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_commands"]


def _cmd_list(args: argparse.Namespace) -> int:
    import rewards
    import textenv

    print("Environments:")
    for env_id in textenv.env_ids():
        print(f"  {env_id}")
    print("Rewards:")
    for name in rewards.names():
        print(f"  {name}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import textenv
    from textenv.testing import check_text_env

    env = textenv.make(args.env, **_overrides(args))
    report = check_text_env(env, seed=args.seed)
    for name in report.checks:
        print(f"ok  {name}")
    for warning in report.warnings:
        print(f"warning  {warning}")
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    import textenv
    from textenv.kl import send_logprobs
    from textenv.sampler import LMSampler

    env = textenv.make(args.env, **_overrides(args))
    base = env.unwrapped
    # The demo's agent samples from the reference model itself at another temperature, and tells the env
    # its log-probabilities: the KL column is then KL(π_T ‖ π_ref) along the sampled completion.
    sampler = LMSampler(base.model, temperature=args.temperature, seed=args.seed)  # type: ignore[attr-defined]
    print(f"{args.env}: {args.episodes} episodes, agent = reference model at temperature {args.temperature}")
    returns = []
    for episode in range(args.episodes):
        obs, info = env.reset(seed=args.seed + episode)
        total, done = 0.0, False
        while not done:
            actions, logprobs = sampler.act(obs)
            send_logprobs(env, obs["input_ids"], actions, logprobs)
            obs, reward, done, truncated, info = env.step(actions[0])
            total += float(reward)
            done = done or truncated
        returns.append(total)
        print(f"\n[{episode}] {info['prompt']!r} -> {info['completion']!r}")
        print(
            f"    reward model {info['rm_score']:+.3f}   KL {info['kl_sum']:+.3f} nats   "
            f"β {info['kl_coef']:.3g}   return {total:+.3f}   (ended by {info['end_reason']})"
        )
    print(f"\nmean return over {len(returns)} episodes: {sum(returns) / len(returns):+.3f}")
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = json.loads(args.env_kwargs) if args.env_kwargs else {}
    if getattr(args, "model", None):
        kwargs["model"] = args.model
    return kwargs


def add_commands(sub: Any) -> None:
    """Add ``list``, ``check`` and ``rollout`` to an argparse sub-parsers object."""
    p = sub.add_parser("list", help="list the registered env ids and reward names")
    p.set_defaults(func=_cmd_list)

    for name, func, help_ in (
        ("check", _cmd_check, "run textenv.testing.check_text_env on an env id"),
        ("rollout", _cmd_rollout, "sample a few episodes from the reference model; print text, reward parts, KL"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--env", default="textenv/Sentiment-v0", help="a registered env id")
        p.add_argument("--model", default=None, help="override the env's model (hub id or local folder)")
        p.add_argument("--env-kwargs", default=None, help="JSON of env overrides, e.g. '{\"max_new_tokens\": 8}'")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=func)
        if name == "rollout":
            p.add_argument("--episodes", type=int, default=4)
            p.add_argument("--temperature", type=float, default=1.2)
