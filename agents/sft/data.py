"""Demonstrations for supervised fine-tuning: reading them, and turning one into masked training tokens.

A demonstrations file is JSON Lines (or a ``.json`` array) with one record per demonstration, in one of
these shapes:

- ``{"prompt": ..., "response": ...}`` (``"completion"`` is read as ``"response"``, the shape TRL uses);
- ``{"instruction": ..., "input": ..., "output": ...}`` (the Alpaca shape; ``input`` may be empty or absent),
  laid out as the prompt :data:`INSTRUCTION_TEMPLATE` (or :data:`INSTRUCTION_TEMPLATE_NO_INPUT`) and the
  response ``output``.

The prompt is tokenised alone, exactly as the env tokenises a prompt, and the response is tokenised
separately and appended, followed by the end-of-sequence token, so the model learns to stop where the env
ends an episode. Only response tokens (and the end-of-sequence token) carry labels; prompt tokens get the
label ``-100``, which the loss ignores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.errors import DemonstrationError

__all__ = [
    "IGNORE_INDEX",
    "INSTRUCTION_TEMPLATE",
    "INSTRUCTION_TEMPLATE_NO_INPUT",
    "Demonstration",
    "encode_demonstration",
    "load_demonstrations",
    "parse_demonstration",
]

#: The label of a token that the loss ignores (PyTorch's cross-entropy default).
IGNORE_INDEX = -100

#: The prompt of an instruction/input/output record (the Alpaca layout).
INSTRUCTION_TEMPLATE = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
#: The prompt of an instruction/output record without input.
INSTRUCTION_TEMPLATE_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"


@dataclass(frozen=True)
class Demonstration:
    """One demonstration: a prompt and the response the model should learn to write after it."""

    prompt: str
    response: str


def _text(record: Mapping[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise DemonstrationError(f"{where}: field {key!r} must be a string; it is {got}.")
    if not allow_empty and not value.strip():
        raise DemonstrationError(f"{where}: field {key!r} is empty; every demonstration needs some text there.")
    return value


def parse_demonstration(record: object, where: str = "record") -> Demonstration:
    """One record (see the module docstring for the shapes) as a :class:`Demonstration`.

    Raises:
        DemonstrationError: The record is not a mapping, or has none of the known shapes, or an empty field.
    """
    if not isinstance(record, Mapping):
        raise DemonstrationError(f"{where}: a demonstration must be a JSON object; got {type(record).__name__}.")
    if "prompt" in record:
        key = "response" if "response" in record else "completion"
        if key not in record:
            raise DemonstrationError(
                f"{where}: has 'prompt' but no 'response' (or 'completion'); fields found: {sorted(record)}."
            )
        return Demonstration(_text(record, "prompt", where), _text(record, key, where))
    if "instruction" in record:
        instruction = _text(record, "instruction", where)
        extra = record.get("input") or ""
        if not isinstance(extra, str):
            raise DemonstrationError(f"{where}: field 'input' must be a string; it is a {type(extra).__name__}.")
        prompt = (
            INSTRUCTION_TEMPLATE.format(instruction=instruction, input=extra)
            if extra.strip()
            else INSTRUCTION_TEMPLATE_NO_INPUT.format(instruction=instruction)
        )
        return Demonstration(prompt, _text(record, "output", where))
    raise DemonstrationError(
        f"{where}: unknown demonstration shape with fields {sorted(record)}; use "
        '{"prompt": ..., "response": ...} or {"instruction": ..., "input": ..., "output": ...}.'
    )


def _records(path: Path) -> Iterator[tuple[str, object]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DemonstrationError(f"{path}: not valid JSON ({exc}).") from None
        if not isinstance(data, list):
            raise DemonstrationError(f"{path}: a .json demonstrations file must hold a list of records.")
        for i, record in enumerate(data):
            yield f"{path} item {i}", record
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DemonstrationError(f"{where}: not valid JSON ({exc.msg}).") from None


def load_demonstrations(path: str | os.PathLike[str]) -> list[Demonstration]:
    """Read a demonstrations file (JSONL, or a ``.json`` array).

    Raises:
        DemonstrationError: The file is missing or empty, or a record is malformed (the message names the
            file and line).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise DemonstrationError(
            f"demonstrations file {str(path)!r} does not exist (resolved to {file.resolve()}); pass a JSONL "
            'file of {"prompt": ..., "response": ...} records.'
        )
    demos = [parse_demonstration(record, where) for where, record in _records(file)]
    if not demos:
        raise DemonstrationError(f"{file}: holds no demonstrations; add at least one record.")
    return demos


def encode_demonstration(tokenizer: Any, demo: Demonstration, max_length: int) -> dict[str, list[int]]:
    """Token ids, attention mask and labels of one demonstration; prompt tokens are labelled ``-100``.

    A sequence longer than ``max_length`` loses tokens from the start of its prompt first (the part of the
    prompt next to the response matters most), then from the end of its response.

    Raises:
        DemonstrationError: The tokenizer has no end-of-sequence token, or the response tokenises to nothing.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DemonstrationError("the tokenizer has no end-of-sequence token; SFT appends one to every response.")
    prompt_ids = list(tokenizer(demo.prompt)["input_ids"])
    response_ids = [*tokenizer(demo.response, add_special_tokens=False)["input_ids"], int(eos)]
    if len(response_ids) == 1:
        raise DemonstrationError(f"the response {demo.response!r} tokenises to no tokens.")
    overflow = len(prompt_ids) + len(response_ids) - max_length
    if overflow > 0:
        cut = min(overflow, len(prompt_ids))
        prompt_ids = prompt_ids[cut:]
        response_ids = response_ids[: max_length - len(prompt_ids)]
    ids = prompt_ids + response_ids
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
    }
