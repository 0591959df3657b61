"""The reward-model commands of the ``textenv`` CLI: ``rm train``, ``rm eval`` and ``prefs simulate``.

The work itself lives in the ``rewards`` package (which knows nothing of textenv) and in :mod:`textenv.pairs`;
this module only turns the flags into their arguments, and prints the results::

    textenv prefs simulate --model textenv/toy-gpt2 --prompts builtin:toy --reward sentiment --out prefs.jsonl
    textenv rm train --data prefs.jsonl --base textenv/toy-gpt2 --out runs/rm
    textenv rm eval --data prefs.jsonl --model runs/rm
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from agents.config_flags import add_dataclass_flags

__all__ = ["add_commands", "training_config"]


def _json_arg(text: str | None, flag: str) -> Any:
    """Parse a JSON-valued flag, or raise ``ConfigError`` naming it."""
    from textenv.errors import ConfigError

    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} must be JSON, e.g. '{{\"key\": 1}}'; got {text!r} ({exc})") from None


def _load_data(paths: list[str], skip_bad_lines: bool, fmt: str) -> Any:
    import rewards

    data = None
    for path in paths:
        part = rewards.load_preferences(path, format=fmt, skip_bad_lines=skip_bad_lines)  # type: ignore[arg-type]
        data = part if data is None else data + part
    if data is not None and data.skipped:
        print(f"skipped {len(data.skipped)} bad records; the first: {data.skipped[0]}")
    return data


def training_config(args: argparse.Namespace) -> Any:
    """The :class:`rewards.RewardModelTrainingConfig` of the parsed flags, checked before any (slow) loading.

    Raises:
        ConfigError: A flag's value is out of range, or ``--weights`` is not JSON.
    """
    from agents.config_flags import flag_values
    from rewards import RewardModelTrainingConfig
    from textenv.errors import ConfigError

    values = flag_values(args, RewardModelTrainingConfig)
    if args.weights:
        values["dimension_weights"] = _json_arg(args.weights, "--weights")
    try:
        return RewardModelTrainingConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"rm train: {exc}") from None


def _cmd_train(args: argparse.Namespace) -> int:
    import rewards

    config = training_config(args)
    data = _load_data(args.data, args.skip_bad_lines, args.format)
    from textenv.base_model import resolve_base_model

    base = resolve_base_model(args.base)
    print(f"training a reward model on {len(data.pairs)} pairs and {len(data.ratings)} ratings from {base}")
    result = rewards.train_reward_model(data, base, args.out, config, overwrite=args.overwrite, base_name=args.base)
    stats = result.info.training
    print(f"saved {result.path} ({stats['steps']} steps, {stats['train_seconds']:.0f} s)")
    if "final_eval_accuracy" in stats:
        low, high = stats["final_eval_accuracy_ci95"]
        print(
            f"held-out pairwise accuracy {stats['final_eval_accuracy']:.1%} (95% CI {low:.1%} to {high:.1%}) "
            f"on {stats['eval_pairs']} pairs"
        )
    if "final_eval_loss" in stats:
        print(f"held-out loss {stats['final_eval_loss']:.4f}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import rewards

    data = _load_data(args.data, args.skip_bad_lines, args.format)
    if not data.pairs:
        raise rewards.PreferenceDataError(f"{', '.join(args.data)}: holds ratings only; pairwise accuracy needs pairs")
    reward = rewards.make("learned", path=args.model, batch_size=args.batch_size)
    result = rewards.evaluate_pairwise(reward, data.pairs, batch_size=args.batch_size)
    if args.json:
        print(json.dumps({"model": args.model, **result.__dict__}))
    else:
        print(result)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    import rewards
    from textenv.pairs import PairSampling, sample_pairs
    from textenv.prompts import load_prompts, repeat_prompts

    reward_kwargs = _json_arg(args.reward_kwargs, "--reward-kwargs") or {}
    reward = rewards.make(args.reward, **reward_kwargs)
    source = load_prompts(args.prompts, field=args.field)
    prompts, meta = repeat_prompts(source, repeats=args.repeats, limit=args.limit)
    sampling = PairSampling(
        max_new_tokens=args.max_new_tokens,
        temperature=args.sample_temperature,
        top_p=args.top_p,
        stop_strings=tuple(args.stop or ()),
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    sampled = sample_pairs(args.model, prompts, sampling)
    result = sampled.annotate(reward, temperature=args.temperature, seed=args.seed, meta=meta)
    if not result.pairs:
        raise rewards.PreferenceDataError(
            f"every one of the {len(prompts)} prompts gave two identical (or empty) completions, so there is "
            "nothing to write; raise --sample-temperature or --max-new-tokens"
        )
    written = result.write(args.out)
    print(
        f"wrote {written} pairs to {args.out} ({result.skipped} prompts skipped: identical or "
        f"empty completions); the annotator agreed with {args.reward!r} on {result.agreement:.0%} of the pairs"
    )
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        action="append",
        required=True,
        help="preference file: JSONL of pairs/ratings, or a .json array (repeat for several files)",
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "pairs", "ratings", "conversations", "qa"],
        help="record format (default: recognised per record)",
    )
    p.add_argument("--skip-bad-lines", action="store_true", help="skip and count bad records instead of stopping")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rm train`` (a flag for every RewardModelTrainingConfig field), ``rm eval`` and ``prefs simulate``."""
    import rewards

    rm = subparsers.add_parser("rm", help="train and evaluate learned reward models")
    rm_sub = rm.add_subparsers(dest="rm_command", required=True)

    p = rm_sub.add_parser(
        "train",
        help="train a reward model (sequence classifier) on preference pairs and/or ratings",
        description="Fine-tune AutoModelForSequenceClassification with the Bradley–Terry loss on pairs and "
        "a regression loss on 1–5 ratings; writes save_pretrained weights, metadata and a loss curve.",
    )
    _add_data_args(p)
    p.add_argument("--base", required=True, help="base model: a folder, textenv/toy-gpt2, or the default model id")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--weights",
        default=None,
        help="rating dimension weights as JSON, e.g. '{\"coherence\": 2}' (or --dimension-weights)",
    )
    add_dataclass_flags(p, rewards.RewardModelTrainingConfig, aliases={"--lr": "learning_rate"})
    p.set_defaults(func=_cmd_train)

    p = rm_sub.add_parser("eval", help="pairwise accuracy of a reward model, with a 95%% confidence interval")
    _add_data_args(p)
    p.add_argument("--model", required=True, help="reward model folder written by `textenv rm train`")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=_cmd_eval)

    prefs = subparsers.add_parser("prefs", help="preference data: simulate an annotator")
    prefs_sub = prefs.add_subparsers(dest="prefs_command", required=True)
    p = prefs_sub.add_parser(
        "simulate",
        help="sample two completions per prompt and label them with a reward plus Bradley–Terry noise",
    )
    p.add_argument("--model", required=True, help="the model to sample from (folder, hub id or textenv/toy-gpt2)")
    p.add_argument("--prompts", required=True, help="prompts: builtin:NAME, .jsonl, .csv or a datasets folder")
    p.add_argument("--field", default="prompt", help="the prompt field of the records")
    p.add_argument("--reward", required=True, help="the annotator's reward, a registered name")
    p.add_argument("--reward-kwargs", default=None, help="the reward's configuration as JSON")
    p.add_argument("--out", required=True, help="the pairwise JSONL to write (atomically)")
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="Bradley–Terry noise temperature (0: always the better)",
    )
    p.add_argument("--sample-temperature", type=float, default=1.0, help="sampling temperature of the model")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--stop", action="append", default=None, help="cut completions at this string (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--repeats", type=int, default=1, help="pairs per prompt")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_simulate)
