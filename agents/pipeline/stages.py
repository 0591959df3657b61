"""The five stages of the pipeline, each a function of its context that returns (outputs, metrics).

``sft`` (optional) → ``preferences`` → ``reward_model`` → ``rl`` → ``evaluation``. Each reads the outputs of
the stages before it through their records and writes only into its own folder; each calls the same
function a user would call for that step alone (:func:`agents.sft.train_sft`,
:func:`rewards.simulate_preferences`, :func:`rewards.train_reward_model`, :func:`agents.compare.compare`,
:func:`agents.evaluation.evaluate_runs`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from agents.errors import PipelineError
from agents.pipeline.config import PipelineConfig
from agents.pipeline.runner import Stage, StageContext, fingerprint

__all__ = ["export_db_preferences", "plan", "start_model"]


def start_model(config: PipelineConfig, ctx: StageContext) -> str:
    """The model RL starts from (and the reference): the SFT model if there is one, else ``config.model``."""
    if "sft" in ctx.records:
        return str(ctx.records["sft"].path(ctx.root, "model"))
    return config.model


def _estimate(estimate: Any) -> dict[str, float | None]:
    def plain(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {"mean": plain(estimate.mean), "ci95_half_width": plain(estimate.half_width)}


# ------------------------------------------------------------------------------------------------------ sft


def _sft(config: PipelineConfig, ctx: StageContext) -> tuple[dict[str, Any], dict[str, Any]]:
    from agents.sft import train_sft

    assert config.sft is not None
    sft_config = dataclasses.replace(config.sft.config, progress=ctx.progress, device=config.device)
    result = train_sft(config.sft.data, config.model, ctx.folder / "model", sft_config, overwrite=True)
    keys = ("demonstrations", "train_demos", "eval_demos", "steps", "train_loss", "eval_loss_before", "eval_loss",
            "trainable_parameters", "train_seconds")  # fmt: skip
    outputs = {"model": "model", "loss_curve": "model/loss_curve.png", "info": "model/sft.json"}
    return outputs, {k: result.metrics[k] for k in keys}


# ---------------------------------------------------------------------------------------------- preferences


def export_db_preferences(db: str | Path, out: Path) -> None:
    """Export the labeling page's SQLite database to the preference JSONL (``rewards.human``)."""
    from rewards.errors import LabelingError
    from rewards.human import LabelStore, export_labels

    try:
        export_labels(LabelStore(db), out)
    except LabelingError as exc:
        raise PipelineError(
            f"preferences.source 'db': {exc} with `textenv label serve` or `textenv label cli`."
        ) from exc


def _simulate(config: PipelineConfig, ctx: StageContext, out: Path) -> dict[str, Any]:
    import rewards
    from textenv.pairs import PairSampling, sample_pairs
    from textenv.prompts import load_prompts, repeat_prompts

    prefs = config.preferences
    source = load_prompts(config.prompts, field=config.prompt_field)
    prompts, meta = repeat_prompts(source, repeats=prefs.repeats, limit=prefs.limit)
    sampling = PairSampling(
        max_new_tokens=prefs.max_new_tokens,
        temperature=prefs.sample_temperature,
        top_p=prefs.top_p,
        stop_strings=prefs.stop_strings,
        batch_size=prefs.batch_size,
        seed=prefs.seed,
        progress=ctx.progress,
    )
    sampled = sample_pairs(start_model(config, ctx), prompts, sampling)
    judge = rewards.make(prefs.reward, **prefs.reward_kwargs)
    result = sampled.annotate(judge, temperature=prefs.temperature, seed=prefs.seed, meta=meta)
    if not result.pairs:
        raise PipelineError(
            f"every one of the {len(prompts)} prompts gave two identical (or empty) completions, so there are no "
            "pairs to train on; raise preferences.sample_temperature or preferences.max_new_tokens."
        )
    result.write(out)
    agreement = result.agreement if math.isfinite(result.agreement) else None
    return {"skipped_prompts": result.skipped, "annotator_agreement": agreement}


def _preferences(config: PipelineConfig, ctx: StageContext) -> tuple[dict[str, Any], dict[str, Any]]:
    import rewards

    prefs = config.preferences
    out = ctx.folder / "preferences.jsonl"
    metrics: dict[str, Any] = {"source": prefs.source}
    if prefs.source == "simulate":
        metrics.update(_simulate(config, ctx, out))
    elif prefs.source == "file":
        assert prefs.path is not None
        data = rewards.load_preferences(prefs.path)
        rewards.write_jsonl(out, [*data.pairs, *data.ratings])
        metrics["file"] = str(prefs.path)
    else:
        assert prefs.db is not None
        export_db_preferences(prefs.db, out)
        metrics["db"] = str(prefs.db)
    data = rewards.load_preferences(out)
    metrics.update(pairs=len(data.pairs), ratings=len(data.ratings))
    return {"preferences": "preferences.jsonl"}, metrics


# --------------------------------------------------------------------------------------------- reward model


def _reward_model(config: PipelineConfig, ctx: StageContext) -> tuple[dict[str, Any], dict[str, Any]]:
    import rewards
    from textenv.base_model import resolve_base_model

    data = rewards.load_preferences(ctx.records["preferences"].path(ctx.root, "preferences"))
    base = config.reward_model.base or start_model(config, ctx)
    result = rewards.train_reward_model(
        data,
        resolve_base_model(base),
        ctx.folder / "model",
        config.reward_model.training_config(progress=ctx.progress, device=config.device),
        overwrite=True,
        base_name=base,
    )
    stats = result.info.training
    keys = ("train_pairs", "train_ratings", "eval_pairs", "eval_ratings", "steps", "stopped_early", "train_seconds",
            "final_eval_accuracy", "final_eval_accuracy_ci95", "final_eval_loss")  # fmt: skip
    outputs = {"model": "model", "loss_curve": "model/loss_curve.png", "history": "model/history.csv"}
    return outputs, {k: stats[k] for k in keys if k in stats}


# ------------------------------------------------------------------------------------------------------- rl


def _rl_env(config: PipelineConfig, ctx: StageContext) -> dict[str, Any]:
    """The env arguments the pipeline sets: its prompts and the trained reward model."""
    extra: dict[str, Any] = {
        "prompts": config.prompts,
        "reward": "learned",
        "reward_kwargs": {"path": str(ctx.records["reward_model"].path(ctx.root, "model"))},
    }
    if config.prompt_field != "prompt":
        extra["prompt_field"] = config.prompt_field
    return extra


def _rl(config: PipelineConfig, ctx: StageContext, ray: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    from agents.checkpoint import export_policy
    from agents.compare import compare

    rl = config.rl
    compare_dir = ctx.folder / "compare"
    result = compare(
        rl.env,
        rl.algos,
        rl.seeds,
        rl.budget_tokens,
        preset=rl.preset,
        out_dir=compare_dir,
        overrides={
            **rl.train,
            "device": config.device,
            "model": start_model(config, ctx),
            "env_kwargs": rl.merged_env_kwargs(_rl_env(config, ctx)),
        },
        progress=ctx.progress,
        ray=ray,
    )
    for run in result.runs:  # the tuned LMs as plain model folders, for evaluation and for users
        export_policy(run.out_dir)
    runs = [Path(run.out_dir).relative_to(ctx.folder).as_posix() for run in result.runs]
    outputs: dict[str, Any] = {"report": "compare/report.md", "summary": "compare/summary.csv", "runs": runs}
    for plot in ("learning_curves.png", "reward_vs_kl.png"):
        if (compare_dir / plot).exists():
            outputs[plot.removesuffix(".png")] = f"compare/{plot}"
    names = ("reward_before", "final_reward", "final_kl", "reward_per_kl", "eval_reward", "tokens_per_s",
             "wall_time_s")  # fmt: skip
    metrics = {
        row.algo: {"seeds": list(row.seeds), **{name: _estimate(getattr(row, name)) for name in names}}
        for row in result.rows
    }
    return outputs, {"algos": metrics}


# ----------------------------------------------------------------------------------------------- evaluation


def _evaluation(config: PipelineConfig, ctx: StageContext) -> tuple[dict[str, Any], dict[str, Any]]:
    from agents.compare import load_run
    from agents.evaluation import evaluate_runs, write_evaluation
    from textenv.prompts import load_prompts

    ev = config.evaluation
    rl = ctx.records["rl"]
    runs = [load_run(ctx.root / "rl" / path) for path in rl.outputs["runs"]]
    source = load_prompts(ev.prompts or config.prompts, field=config.prompt_field)
    prompts = list(source)[: ev.n_prompts] if ev.n_prompts else list(source)
    result = evaluate_runs(runs, prompts, ev.samples_per_prompt, progress=ctx.say)
    write_evaluation(result, ctx.folder)
    metrics = {
        "prompts": result.prompts,
        "samples_per_prompt": result.samples_per_prompt,
        "policies": {p.name: {k: _estimate(v) for k, v in p.metrics.items()} for p in result.policies},
    }
    outputs = {"report": "evaluation.md", "metrics": "metrics.json", "samples": "samples.jsonl"}
    return outputs, metrics


# ----------------------------------------------------------------------------------------------------- plan


def plan(config: PipelineConfig, ray: Any = None) -> list[Stage]:
    """The stages of ``config``, in order, with the specs their hashes cover.

    ``ray`` (:class:`agents.ray_runs.RayOptions`) trains the RL stage's runs as Ray tasks; where they train is no
    part of any hash.
    """
    has_sft = config.sft is not None
    model: list[str | None] = [] if has_sft else [fingerprint(config.model)]  # else the sft stage's hash stands for it
    upstream = ("sft",) if has_sft else ()
    prompts = {"prompts": fingerprint(config.prompts), "prompt_field": config.prompt_field}
    stages: list[Stage] = []
    spec: dict[str, Any]
    if config.sft is not None:
        sft = config.sft
        spec = {"model": fingerprint(config.model), "data": fingerprint(sft.data), "config": sft.config.to_dict()}
        stages.append(Stage("sft", spec, (), lambda ctx: _sft(config, ctx)))

    prefs = config.preferences
    if prefs.source == "simulate":
        spec = {**dataclasses.asdict(prefs), "path": None, "db": None, **prompts, "model": model}
        inputs = upstream
    else:
        spec = {"source": prefs.source, "path": fingerprint(prefs.path), "db": fingerprint(prefs.db, with_wal=True)}
        inputs = ()
    stages.append(Stage("preferences", spec, inputs, lambda ctx: _preferences(config, ctx)))

    rm = config.reward_model
    rm_spec = {**dataclasses.asdict(rm), "base": fingerprint(rm.base) if rm.base else model}
    rm_inputs = ("preferences", *(upstream if rm.base is None else ()))
    stages.append(Stage("reward_model", rm_spec, rm_inputs, lambda ctx: _reward_model(config, ctx)))

    rl_spec = {**dataclasses.asdict(config.rl), **prompts, "model": model}
    stages.append(Stage("rl", rl_spec, ("reward_model", *upstream), lambda ctx: _rl(config, ctx, ray), resumable=True))

    ev = config.evaluation
    ev_spec = {**dataclasses.asdict(ev), "prompts": fingerprint(ev.prompts or config.prompts),
               "prompt_field": config.prompt_field}  # fmt: skip
    stages.append(Stage("evaluation", ev_spec, ("rl",), lambda ctx: _evaluation(config, ctx)))
    return stages
