"""Command-line flags generated from a config dataclass: one ``--field-name`` per field, its help its docstring.

The YAML file and the flags fill the same dataclass (:class:`agents.config.TrainConfig`), so a field added there is
a flag at once, documented by the string literal under it. Values are parsed by the field's annotation: ``int``,
``float`` and ``str`` as such (``int | None`` also takes ``none``), anything else (``env_kwargs``, ``lora``) as a
YAML value, e.g. ``--env-kwargs '{max_new_tokens: 16, kl_coef: 0.1}'``. A flag left out keeps the value of the
preset or the ``--config`` file.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

__all__ = ["add_dataclass_flags", "default_text", "field_docs", "flag_values"]


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The doc of each field of the dataclass ``cls``: the string literal that follows its annotation, else its
    entry in the class docstring's Google-style ``Attributes:`` section."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    fields = {f.name for f in dataclasses.fields(cls)}
    return {**{k: v for k, v in _attribute_docs(cls).items() if k in fields}, **docs}


def _attribute_docs(cls: type) -> dict[str, str]:
    """The entries of the ``Attributes:`` section of a Google-style class docstring, one line each."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    if "Attributes:" not in lines:
        return docs
    name = None
    for line in lines[lines.index("Attributes:") + 1 :]:
        if not line.strip():
            break
        entry = line.strip().split(":", 1)
        if not line.startswith(" " * 8) and len(entry) == 2 and entry[0].isidentifier():
            name = entry[0]
            docs[name] = entry[1].strip()
        elif name is not None:
            docs[name] += " " + line.strip()
    return docs


def _parser_for(annotation: str) -> tuple[Callable[[str], Any], str]:
    """A string-to-value function for a field annotated ``annotation`` (a string under postponed evaluation)."""
    parts = {part.strip() for part in annotation.split("|")}
    optional = "None" in parts
    parts.discard("None")
    simple = {"int": int, "float": float, "str": str}
    if len(parts) == 1 and next(iter(parts)) in simple:
        kind = simple[next(iter(parts))]

        def parse(text: str) -> Any:
            if optional and text.strip().lower() in ("none", "null"):
                return None
            try:
                return kind(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {annotation}, got {text!r}") from None

        return parse, next(iter(parts)).upper()

    def parse_yaml(text: str) -> Any:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise argparse.ArgumentTypeError(f"not a YAML value: {text!r} ({exc})") from None

    return parse_yaml, "YAML"


def add_dataclass_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: Iterable[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> list[str]:
    """Add ``--field-name`` for every field of ``cls`` not in ``skip``, unless the parser has that flag already
    (a hand-written one with choices or a shorter help); returns the fields added.

    A ``bool`` field is a ``--name/--no-name`` switch. ``aliases`` maps old spellings (``"--lr"``) to the field
    they set (``"learning_rate"``). Read the values back with :func:`flag_values`.
    """
    docs = field_docs(cls)
    skipped = set(skip)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in skipped:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{docs.get(f.name, '')} ({cls.__name__}.{f.name}; {default_text(f)})"
        if str(f.type) == "bool":
            kind: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        else:
            parse, metavar = _parser_for(str(f.type))
            kind = {"type": parse, "metavar": metavar}
        try:
            parser.add_argument(flag, dest=f.name, default=None, help=help_, **kind)
        except argparse.ArgumentError:  # the command defines this flag itself
            continue
        added.append(f.name)
    for alias, name in (aliases or {}).items():
        parse, metavar = _parser_for(str(next(f.type for f in dataclasses.fields(cls) if f.name == name)))
        parser.add_argument(
            alias, dest=name, type=parse, metavar=metavar, default=None, help=f"the same as --{name.replace('_', '-')}"
        )
    return added


def default_text(f: dataclasses.Field[Any]) -> str:
    """How ``--help`` states the default of the field ``f``: its value, its factory's value, or that it has none."""
    if f.default is not dataclasses.MISSING:
        return f"default {f.default!r}"
    if f.default_factory is not dataclasses.MISSING:
        return f"default {f.default_factory()!r}"
    return "no default: the config file or this flag must set it"


def flag_values(args: argparse.Namespace, cls: type, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The fields of ``cls`` given as flags in ``args`` (those left out are not in the result)."""
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
