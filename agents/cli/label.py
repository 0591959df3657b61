"""The human-feedback commands of the ``textenv`` CLI: ``label tasks|serve|cli|export|stats``.

The work lives in :mod:`rewards.human` (storage, page, terminal labeler, export, statistics), in
:mod:`textenv.label_tasks` (tasks sampled from a model) and :mod:`agents.run_folder` (what a finished run
samples with)::

    textenv label tasks --model textenv/toy-gpt2 --prompts builtin:toy --out tasks.jsonl
    textenv label serve --tasks tasks.jsonl --db labels.sqlite          # open http://127.0.0.1:8000/
    textenv label cli --db labels.sqlite --annotator alice              # the same, in a terminal
    textenv label stats --db labels.sqlite
    textenv label export --db labels.sqlite --out prefs.jsonl           # then: textenv rm train --data prefs.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

__all__ = ["TOKEN_ENV", "add_commands"]

#: The environment variable ``label serve`` reads its token from (keeps it out of the process list).
TOKEN_ENV = "TEXTENV_LABEL_TOKEN"


def _sample(args: argparse.Namespace) -> Any:
    """Sample tasks from ``--model`` or ``--from-run``; returns a ``SampledTasks``."""
    from agents.run_folder import run_source
    from textenv.errors import ConfigError
    from textenv.label_tasks import sample_tasks
    from textenv.pairs import PairSampling

    if args.from_run:
        source = run_source(args.from_run)
        model, prompts = source.model, args.prompts or source.prompts
        field = args.field or source.prompt_field
        max_new = args.max_new_tokens or source.max_new_tokens
        temperature = args.temperature or source.temperature
        stops = source.stop_strings if args.stop is None else tuple(args.stop)
    else:
        if not args.prompts:
            raise ConfigError("--model needs --prompts: builtin:NAME, a .jsonl or .csv file, or a datasets folder")
        model, prompts, field = args.model, args.prompts, args.field or "prompt"
        max_new, temperature, stops = args.max_new_tokens or 32, args.temperature or 1.0, tuple(args.stop or ())
    sampling = PairSampling(
        max_new_tokens=max_new,
        temperature=temperature,
        top_p=args.top_p,
        stop_strings=stops,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    sampled = sample_tasks(model, prompts, sampling, prompt_field=field, limit=args.limit, repeats=args.repeats)
    print(f"sampled {len(sampled.tasks)} tasks from {model} ({sampled.skipped} pairs dropped: equal or empty)")
    if not sampled.tasks:
        raise ConfigError(
            "every sampled pair was two equal (or empty) completions; raise --temperature or --max-new-tokens"
        )
    return sampled


def _store_with_tasks(args: argparse.Namespace) -> Any:
    """Open ``--db`` and add the tasks of ``--tasks``, ``--from-run`` or ``--model`` (if given).

    The tasks are read (or sampled) before the database is opened, and a database this call created is removed
    again if its tasks are refused, so a failed start leaves no empty file behind.
    """
    from rewards.errors import LabelingError
    from rewards.human import LabelStore, load_tasks
    from rewards.human.store import remove_database

    tasks = load_tasks(args.tasks) if args.tasks else None
    if tasks is None and (args.from_run or args.model):
        tasks = _sample(args).tasks
    new = not os.path.exists(args.db)
    if new and tasks is None:
        raise LabelingError(
            f"{args.db} does not exist yet, so it holds no tasks; give --tasks FILE, --from-run RUN or "
            "--model M --prompts P"
        )
    store = LabelStore(args.db)
    try:
        if tasks is not None:
            added = store.add_tasks(tasks)
            print(f"{store.path}: {added} new tasks ({len(tasks) - added} already there), {store.count_tasks()} in all")
        if store.count_tasks() == 0:
            raise LabelingError(
                f"{store.path} holds no tasks yet; give --tasks FILE, --from-run RUN or --model M --prompts P"
            )
    except BaseException:
        if new:
            remove_database(store.path)
        raise
    return store


def _cmd_tasks(args: argparse.Namespace) -> int:
    from rewards.human import write_tasks

    written = write_tasks(args.out, _sample(args).tasks)
    print(f"wrote {written} tasks to {args.out}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from rewards.human.server import check_token, serve

    token = args.token or os.environ.get(TOKEN_ENV) or None
    check_token(args.host, token)  # before sampling, which can take a while
    store = _store_with_tasks(args)
    serve(store, host=args.host, port=args.port, token=token, shuffle=not args.no_shuffle)
    return 0


def _cmd_cli(args: argparse.Namespace) -> int:
    from rewards.human import run_terminal

    store = _store_with_tasks(args)
    run_terminal(store, args.annotator, ratings=args.ratings, shuffle=not args.no_shuffle)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from rewards.human import export_labels

    store = _existing_store(args.db)
    result = export_labels(store, args.out, aggregate=args.aggregate)
    print(
        f"wrote {result.pairs} pairs and {result.ratings} ratings to {args.out} "
        f"(left out: {result.ties} ties, {result.skips} skips"
        + (f", {result.undecided_tasks} tasks without a majority" if args.aggregate == "majority" else "")
        + ")"
    )
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from rewards.human import compute_stats

    stats = compute_stats(_existing_store(args.db))
    print(json.dumps(stats.to_json(), indent=2) if args.json else stats)
    return 0


def _existing_store(path: str) -> Any:
    from rewards.errors import LabelingError
    from rewards.human import LabelStore

    if not os.path.isfile(path):
        raise LabelingError(f"no label database at {path}; label first with `textenv label serve --db {path} ...`")
    return LabelStore(path)


def _add_source_args(p: argparse.ArgumentParser, required: bool) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    if not required:
        group.add_argument("--tasks", default=None, help="task file (JSONL of {prompt, completions: [a, b]})")
    group.add_argument("--from-run", default=None, help="sample from the trained policy of a `textenv train` run")
    group.add_argument("--model", default=None, help="sample from a model (folder, hub id or textenv/toy-gpt2)")
    p.add_argument("--prompts", default=None, help="prompts: builtin:NAME, .jsonl, .csv or a datasets folder")
    p.add_argument("--field", default=None, help="the prompt field of the records (default: prompt)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--repeats", type=int, default=1, help="pairs per prompt")
    p.add_argument("--max-new-tokens", type=int, default=None, help="completion length (default: the run's, or 32)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the run's, or 1)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--stop", action="append", default=None, help="cut completions at this string (repeatable)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (the same seed gives the same tasks)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``label tasks|serve|cli|export|stats`` to the ``textenv`` parser's subcommands."""
    label = subparsers.add_parser("label", help="human feedback: labeling page, terminal labeler, export, stats")
    sub = label.add_subparsers(dest="label_command", required=True)

    p = sub.add_parser("tasks", help="sample two completions per prompt from a model or a run; write a task file")
    _add_source_args(p, required=True)
    p.add_argument("--out", required=True, help="task file to write (JSONL, atomically)")
    p.set_defaults(func=_cmd_tasks)

    p = sub.add_parser(
        "serve",
        help="serve the labeling page (FastAPI + uvicorn) over a SQLite label database",
        description="Tasks come from --tasks, --from-run or --model (added to --db; tasks already there are kept), "
        "or from --db alone to go on labeling. Binds 127.0.0.1; a --host off the loopback needs --token.",
    )
    p.add_argument("--db", required=True, help="label database (SQLite; created if missing)")
    _add_source_args(p, required=False)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only, like any 127.x.x.x or ::1)",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--token",
        default=None,
        help=f"secret every request must carry (required off the loopback; default: ${TOKEN_ENV}, which keeps it "
        "out of the process list)",
    )
    p.add_argument("--no-shuffle", action="store_true", help="always show completion 1 as A")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("cli", help="label in the terminal (over SSH), into the same database")
    p.add_argument("--db", required=True, help="label database (SQLite; created if missing)")
    p.add_argument("--annotator", required=True, help="your annotator id, e.g. alice")
    _add_source_args(p, required=False)
    p.add_argument("--ratings", action="store_true", help="also ask for 1-5 ratings of both completions")
    p.add_argument("--no-shuffle", action="store_true", help="always show completion 1 as A")
    p.set_defaults(func=_cmd_cli)

    p = sub.add_parser("export", help="write the labels as the pairwise and ratings JSONL that `rm train` reads")
    p.add_argument("--db", required=True, help="label database")
    p.add_argument("--out", required=True, help="JSONL file to write (atomically)")
    p.add_argument(
        "--aggregate",
        choices=["all", "majority"],
        default="all",
        help="all: one record per annotator's label; majority: one pair per task by majority vote",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("stats", help="counts, inter-annotator agreement (Cohen's kappa) and position bias")
    p.add_argument("--db", required=True, help="label database")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_stats)
