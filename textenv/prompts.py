"""Prompt sources: where the env's episodes start.

Each episode of a text env begins with one prompt drawn from a :class:`PromptSource`. A source is a small,
immutable, picklable tuple of :class:`Prompt` records held in memory (RL prompt sets have hundreds or
thousands of entries, not millions), so sampling is one ``rng.integers`` call and a source travels to
subprocess workers of a vector env by pickling.

Accepted formats, all resolved by :func:`load_prompts`:

* ``"builtin:review_openings"``, ``"builtin:review_verdicts"``, ``"builtin:toy"`` and ``"builtin:tldr_posts"``:
  the sets packaged in ``textenv/data``. The first holds neutral openings of film, product and restaurant reviews
  (the continuation decides the sentiment); the second holds review sentences cut just before the verdict ("The
  acting in this film was"), so that the first few tokens decide the sentiment (the main job uses it: short
  completions learn fast on a CPU); the third holds short prompts written only in the toy tokenizer's words; the
  fourth holds short everyday posts ending in ``"TL;DR:"``, each with a ``reference`` summary (written for
  textenv; the prompts of ``textenv/Summarize-v0``).
* JSON Lines (``.jsonl``, ``.json-lines``, ``.ndjson``): one JSON object per line, such as
  ``{"prompt": "The plot of this movie", "reference": "..."}``. A line may also be a bare JSON string,
  which is the prompt itself. Blank lines are skipped.
* CSV (``.csv``): UTF-8 (a byte-order mark is allowed) with a header row; one column holds the prompt.
* A folder written by ``datasets.Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``, or an in-memory
  ``datasets.Dataset``/``DatasetDict``. Needs the optional extra: ``pip install "textenv[data]"``.
* A Python list or tuple of strings, of mappings, or of :class:`Prompt` records.

In every record, the field named by ``field`` (default ``"prompt"``) holds the prompt text; every other
field is kept, as it is, in :attr:`Prompt.meta`, which the env passes to the reward as keyword arguments
(for example ``reference`` for a summarisation reward). Prompt text is never stripped: a leading space
can matter to a tokenizer.

Every problem with a source raises :class:`~textenv.errors.PromptSourceError`, whose message names the
file (with the line number where there is one) or the item, what was wrong, and how to fix it.
"""

from __future__ import annotations

import csv
import difflib
import json
import operator
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsIndex, TypeAlias

import numpy as np

from textenv.errors import ConfigError, PromptSourceError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

__all__ = [
    "BUILTIN_PROMPT_SETS",
    "JSONL_SUFFIXES",
    "Prompt",
    "PromptRecord",
    "PromptSource",
    "PromptSpec",
    "load_prompts",
    "repeat_prompts",
]

#: Names accepted by :func:`load_prompts` for the prompt sets packaged with textenv, and their files.
BUILTIN_PROMPT_SETS: Mapping[str, str] = {
    "builtin:review_openings": "review_openings.jsonl",
    "builtin:review_verdicts": "review_verdicts.jsonl",
    "builtin:toy": "toy_prompts.jsonl",
    "builtin:tldr_posts": "tldr_posts.jsonl",
}

#: File suffixes read as JSON Lines.
JSONL_SUFFIXES: tuple[str, ...] = (".jsonl", ".json-lines", ".ndjson")

_CSV_SUFFIXES = (".csv",)

# Field names that prompt data sets commonly use; suggested when the requested field is absent and no
# present name is close to it by spelling.
_COMMON_PROMPT_FIELDS = ("prompt", "text", "query", "question", "instruction", "input", "context", "content")

# The datasets classes that load_prompts hands to from_dataset (which explains why the iterable ones fail).
_DATASETS_TYPES = ("Dataset", "DatasetDict", "IterableDataset", "IterableDatasetDict")

_ACCEPTED = (
    "a PromptSource; "
    + ", ".join(repr(name) for name in BUILTIN_PROMPT_SETS)
    + "; the path of an existing "
    + "/".join(JSONL_SUFFIXES + _CSV_SUFFIXES)
    + " file or of a folder saved with datasets' save_to_disk; "
    + "a list or tuple of strings or mappings; or a datasets.Dataset/DatasetDict"
)


@dataclass(frozen=True)
class Prompt:
    """One prompt and the extra fields of its record.

    Attributes:
        text: The prompt text, as the env will tokenize it.
        meta: The record's other fields (e.g. ``reference``), passed to the reward as keyword arguments.
            The mapping is copied on construction; treat it as read-only. It takes no part in hashing.
    """

    text: str
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Prompt.text must be a str, got {type(self.text).__name__}: {self.text!r:.80}")
        if not isinstance(self.meta, Mapping):
            raise TypeError(f"Prompt.meta must be a mapping, got {type(self.meta).__name__}")
        # A private plain dict: the caller's mapping can change later without changing this record, and a
        # dict pickles (a MappingProxyType would not).
        object.__setattr__(self, "meta", dict(self.meta))


#: One record of :meth:`PromptSource.from_list`: the prompt text, a mapping holding it, or a Prompt.
PromptRecord: TypeAlias = "str | Mapping[str, Any] | Prompt"


@dataclass(frozen=True, repr=False)
class PromptSource:
    """An immutable, picklable set of prompts held in memory.

    Build one with :func:`load_prompts` or with the ``from_*`` constructors. Two sources are equal when they
    hold equal prompts in the same order under the same name.

    Args:
        prompts: The prompts, in order (any iterable of :class:`Prompt`; stored as a tuple).
        name: Where the prompts came from (a path, ``builtin:...``, ...), used in messages and ``info``.

    Raises:
        PromptSourceError: If there are no prompts.
        TypeError: If an element is not a :class:`Prompt` (use :meth:`from_list` for strings and mappings).
    """

    prompts: tuple[Prompt, ...]
    name: str = "in-memory prompts"

    def __post_init__(self) -> None:
        prompts = tuple(self.prompts)
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, Prompt):
                raise TypeError(
                    f"PromptSource({self.name!r}): element {i} is a {type(prompt).__name__}, not a Prompt; "
                    "build a source from strings or mappings with PromptSource.from_list(...)"
                )
        if not prompts:
            raise PromptSourceError(
                f"prompt source {self.name!r} holds no prompts, and an episode needs one to start from; "
                "add at least one record with non-empty prompt text (blank lines are skipped), "
                "or use another source, e.g. 'builtin:review_openings'"
            )
        object.__setattr__(self, "prompts", prompts)

    # --- sequence protocol -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: SupportsIndex) -> Prompt:
        return self.prompts[operator.index(index)]

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __repr__(self) -> str:
        return f"PromptSource(name={self.name!r}, n={len(self.prompts)})"

    @property
    def texts(self) -> tuple[str, ...]:
        """The prompt texts, in order."""
        return tuple(prompt.text for prompt in self.prompts)

    def sample(self, rng: np.random.Generator) -> Prompt:
        """Draw one prompt uniformly at random.

        Args:
            rng: The generator to draw from (the env's ``np_random``). Nothing else is consulted, so the
                draw is reproducible from the generator's seed.

        Returns:
            The drawn prompt.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"PromptSource.sample needs a numpy.random.Generator (e.g. env.np_random or "
                f"numpy.random.default_rng(seed)), got {type(rng).__name__}"
            )
        return self.prompts[int(rng.integers(len(self.prompts)))]

    # --- constructors ------------------------------------------------------------------------------------

    @classmethod
    def from_list(
        cls,
        items: Sequence[PromptRecord],
        field: str = "prompt",
        *,
        name: str | None = None,
    ) -> PromptSource:
        """Build a source from prompt strings, mappings holding ``field``, or :class:`Prompt` records.

        Args:
            items: The records. A mapping's fields other than ``field`` go into the prompt's meta.
            field: The mapping key that holds the prompt text.
            name: Name of the source for messages; defaults to a description of the list.

        Returns:
            The source.

        Raises:
            PromptSourceError: If the list is empty or a record is malformed (the message names the item).
        """
        _check_field(field)
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise PromptSourceError(
                f"PromptSource.from_list expects a list or tuple of prompts, got {type(items).__name__}: "
                f"{items!r:.80}; wrap a single prompt in a list: [prompt]"
            )
        items = list(items)
        name = name if name is not None else "prompt list"
        return cls(
            tuple(_to_prompt(item, f"{name}: item {i}", field) for i, item in enumerate(items)),
            name=name,
        )

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], field: str = "prompt") -> PromptSource:
        """Read a JSON Lines file: one JSON object (or bare string) per line; blank lines are skipped.

        Args:
            path: The file.
            field: The key of each object that holds the prompt text.

        Returns:
            The source, named after the path.

        Raises:
            PromptSourceError: If the file is missing or unreadable, a line is not JSON, or a record is
                malformed (the message gives ``file:line``).
        """
        _check_field(field)
        file = _existing_file(path, "JSON Lines")
        text = _read_text(file)
        return cls._from_jsonl_text(text, name=str(path), field=field)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], field: str = "prompt") -> PromptSource:
        """Read a UTF-8 CSV file with a header row; the column ``field`` holds the prompt text.

        Args:
            path: The file.
            field: The header of the column that holds the prompt text.

        Returns:
            The source, named after the path; other columns go into each prompt's meta (as strings).

        Raises:
            PromptSourceError: If the file is missing or unreadable, the column is absent, a row is ragged,
                or a prompt is empty (the message gives ``file:line``).
        """
        _check_field(field)
        file = _existing_file(path, "CSV")
        name = str(path)
        text = _read_text(file)
        reader = csv.DictReader(text.splitlines(keepends=True))
        try:
            columns = list(reader.fieldnames or [])
            if columns and field not in columns:
                raise PromptSourceError(
                    f"{name}:1: the header has no column {field!r}; its columns are "
                    f"{_quoted(columns)}. {_field_hint(field, columns)}"
                )
            prompts = []
            for row in reader:
                where = f"{name}:{reader.line_num}"
                if None in row:  # DictReader files surplus values under the key None
                    raise PromptSourceError(
                        f"{where}: the row has more values than the header has columns ({len(columns)}); "
                        "quote values that contain commas"
                    )
                if any(value is None for value in row.values()):
                    raise PromptSourceError(
                        f"{where}: the row has fewer values than the header has columns ({len(columns)}); "
                        "give every column a value (an empty one is ``,,``)"
                    )
                prompts.append(_to_prompt(row, where, field))
        except csv.Error as err:
            raise PromptSourceError(
                f"{name}:{reader.line_num}: not valid CSV ({err}); check the quoting of that line"
            ) from err
        return cls(tuple(prompts), name=name)

    @classmethod
    def from_dataset(
        cls,
        ds_or_path: Any,
        field: str = "prompt",
        split: str | None = None,
        *,
        name: str | None = None,
    ) -> PromptSource:
        """Read a Hugging Face ``datasets`` object, or a folder saved with its ``save_to_disk``.

        Needs the optional dependency: ``pip install "textenv[data]"``; ``datasets`` is imported only here.

        Args:
            ds_or_path: A ``datasets.Dataset``, a ``datasets.DatasetDict``, or the path of a saved folder.
            field: The column that holds the prompt text; other columns go into each prompt's meta.
            split: For a ``DatasetDict``, which split to read; by default ``"train"`` when it has one.
            name: Name of the source for messages; defaults to the path (and split).

        Returns:
            The source.

        Raises:
            PromptSourceError: If ``datasets`` is missing, the folder is not a saved dataset, the split or
                column is absent, or a record is malformed (the message names the row).
        """
        _check_field(field)
        datasets = _import_datasets()
        origin: str
        if isinstance(ds_or_path, (str, os.PathLike)):
            folder = Path(ds_or_path).expanduser()
            origin = str(ds_or_path)
            if not folder.is_dir():
                raise PromptSourceError(
                    f"dataset folder {origin!r} does not exist or is not a folder (resolved to "
                    f"{folder.resolve()}); pass the folder written by Dataset.save_to_disk(...)"
                )
            try:
                ds = datasets.load_from_disk(str(folder))
            except (FileNotFoundError, ValueError, OSError) as err:
                raise PromptSourceError(
                    f"folder {origin!r} is not a dataset saved with Dataset.save_to_disk or "
                    f"DatasetDict.save_to_disk ({err}); save one there, or point to a .jsonl or .csv file"
                ) from err
        else:
            ds = ds_or_path
            origin = f"{type(ds).__name__}"

        if isinstance(ds, datasets.DatasetDict):
            splits = list(ds.keys())
            if split is None:
                if "train" not in ds:
                    raise PromptSourceError(
                        f"dataset {origin!r} has no 'train' split to read by default; its splits are "
                        f"{_quoted(splits)}; choose one with split=..."
                    )
                split = "train"
            elif split not in ds:
                close = difflib.get_close_matches(split, splits, n=1)
                hint = f" Did you mean split={close[0]!r}?" if close else ""
                raise PromptSourceError(
                    f"dataset {origin!r} has no split {split!r}; its splits are {_quoted(splits)}.{hint}"
                )
            ds = ds[split]
            origin = f"{origin}[{split}]"
        elif isinstance(ds, datasets.Dataset):
            if split is not None and ds.split is not None and str(ds.split) != split:
                raise PromptSourceError(
                    f"dataset {origin!r} is the single split {str(ds.split)!r}, but split={split!r} was "
                    "asked for; drop split=..., or pass the DatasetDict that holds that split"
                )
        else:
            raise PromptSourceError(
                "PromptSource.from_dataset expects a datasets.Dataset, a DatasetDict, or a saved folder, "
                f"got {type(ds).__name__}; an IterableDataset must be materialised first, e.g. "
                "datasets.Dataset.from_list(list(ds.take(1000)))"
            )

        name = name if name is not None else origin
        columns = list(ds.column_names)
        if len(ds) and field not in columns:
            raise PromptSourceError(
                f"dataset {name!r} has no column {field!r}; its columns are {_quoted(columns)}. "
                f"{_field_hint(field, columns)}"
            )
        return cls(
            tuple(_to_prompt(row, f"{name}: row {i}", field) for i, row in enumerate(ds)),
            name=name,
        )

    @classmethod
    def _from_jsonl_text(cls, text: str, *, name: str, field: str) -> PromptSource:
        prompts = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{name}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PromptSourceError(
                    f"{where}: not valid JSON ({err.msg} at column {err.colno}); each line of a JSON Lines "
                    f'file must be one JSON object, e.g. {{"{field}": "The plot of this movie"}}'
                ) from err
            prompts.append(_to_prompt(record, where, field))
        return cls(tuple(prompts), name=name)


#: What :func:`load_prompts` accepts (see its docstring). A string alias, so that ``datasets`` is needed only
#: by type checkers, never at run time.
PromptSpec: TypeAlias = "PromptSource | str | os.PathLike[str] | Sequence[PromptRecord] | Dataset | DatasetDict"


def load_prompts(spec: PromptSpec, field: str = "prompt", split: str | None = None) -> PromptSource:
    """Resolve a prompt specification into a :class:`PromptSource`.

    Resolution, in order:

    1. a :class:`PromptSource` is returned as it is (``field`` and ``split`` are ignored);
    2. ``"builtin:<name>"`` (a key of :data:`BUILTIN_PROMPT_SETS`) loads a set packaged with textenv;
    3. an existing file ending in ``.jsonl``/``.json-lines``/``.ndjson`` is read as JSON Lines, one ending in
       ``.csv`` as CSV (a missing file with one of these suffixes is reported as missing);
    4. an existing folder is read as a saved Hugging Face dataset;
    5. a list or tuple goes to :meth:`PromptSource.from_list`;
    6. a ``datasets.Dataset``/``DatasetDict`` goes to :meth:`PromptSource.from_dataset`.

    Args:
        spec: The prompts, in one of the forms above.
        field: The field (key, column) of each record that holds the prompt text.
        split: The split to read from a ``DatasetDict`` (default ``"train"``).

    Returns:
        The source.

    Raises:
        PromptSourceError: If ``spec`` fits none of the forms, or the source it names is missing, empty or
            malformed.
    """
    if isinstance(spec, PromptSource):
        return spec
    _check_field(field)
    if isinstance(spec, (str, os.PathLike)):
        return _load_from_string(spec, field, split)
    if isinstance(spec, (list, tuple)):
        return PromptSource.from_list(spec, field)
    if _is_datasets_object(spec):
        return PromptSource.from_dataset(spec, field, split)
    raise PromptSourceError(
        f"cannot load prompts from {type(spec).__name__} {spec!r:.80}; load_prompts accepts {_ACCEPTED}"
    )


# --- helpers -----------------------------------------------------------------------------------------------


def _load_from_string(spec: str | os.PathLike[str], field: str, split: str | None) -> PromptSource:
    text = os.fspath(spec)
    if text.startswith("builtin:"):
        return _load_builtin(text, field)
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return PromptSource.from_jsonl(spec, field)
    if suffix in _CSV_SUFFIXES:
        return PromptSource.from_csv(spec, field)
    if path.is_dir():
        return PromptSource.from_dataset(spec, field, split)
    if path.exists():
        raise PromptSourceError(
            f"cannot tell the format of {text!r} from its suffix {path.suffix!r}; rename it to "
            f"{'/'.join(JSONL_SUFFIXES + _CSV_SUFFIXES)}, or call PromptSource.from_jsonl/from_csv directly"
        )
    raise PromptSourceError(
        f"{text!r} is not an existing file or folder (resolved to {path.resolve()}), nor a builtin prompt "
        f"set; load_prompts accepts {_ACCEPTED}. To use the string itself as a prompt, pass a list: "
        f"[{text!r}]"
    )


def _load_builtin(spec: str, field: str) -> PromptSource:
    filename = BUILTIN_PROMPT_SETS.get(spec)
    if filename is None:
        close = difflib.get_close_matches(spec, list(BUILTIN_PROMPT_SETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PromptSourceError(
            f"no builtin prompt set {spec!r}; the builtin sets are {_quoted(BUILTIN_PROMPT_SETS)}.{hint}"
        )
    text = resources.files("textenv").joinpath("data", filename).read_text(encoding="utf-8")
    return PromptSource._from_jsonl_text(text, name=spec, field=field)


def _check_field(field: str) -> None:
    if not isinstance(field, str) or not field:
        raise ConfigError(f"field must be a non-empty string naming the prompt field, got {field!r}")


def _existing_file(path: str | os.PathLike[str], kind: str) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise PromptSourceError(
            f"prompt file {os.fspath(path)!r} does not exist (resolved to {file.resolve()}); check the path, "
            "or use a builtin set such as 'builtin:review_openings'"
        )
    if file.is_dir():
        raise PromptSourceError(
            f"{os.fspath(path)!r} is a folder, not a {kind} file; for a folder saved with "
            "datasets' save_to_disk use PromptSource.from_dataset or load_prompts"
        )
    return file


def _read_text(file: Path) -> str:
    try:
        # utf-8-sig: UTF-8 that tolerates the byte-order mark spreadsheet programs write.
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise PromptSourceError(
            f"{file}: not UTF-8 text (byte {err.start}: {err.reason}); save the file as UTF-8"
        ) from err
    except OSError as err:
        raise PromptSourceError(f"{file}: cannot be read ({err.strerror or err})") from err


def _to_prompt(record: Any, where: str, field: str) -> Prompt:
    """Turn one record into a Prompt; ``where`` locates the record in messages (``file:line``, item, row)."""
    if isinstance(record, Prompt):
        value: Any = record.text
        meta: Mapping[str, Any] = record.meta
    elif isinstance(record, str):
        value, meta = record, {}
    elif isinstance(record, Mapping):
        if field not in record:
            if not record:
                raise PromptSourceError(
                    f"{where}: the record is empty; it needs a {field!r} field holding the prompt text"
                )
            present = [str(key) for key in record]
            raise PromptSourceError(
                f"{where}: the record has no field {field!r}; its fields are {_quoted(present)}. "
                f"{_field_hint(field, present)}"
            )
        value = record[field]
        meta = {key: item for key, item in record.items() if key != field}
    else:
        raise PromptSourceError(
            f"{where}: expected a string or a mapping with a {field!r} field, got {type(record).__name__}: "
            f"{record!r:.80}"
        )
    if not isinstance(value, str):
        raise PromptSourceError(
            f"{where}: the prompt in field {field!r} is a {type(value).__name__} ({value!r:.60}), not a "
            "string; store the prompt as text, or name the field that holds it with field=..."
        )
    if not value.strip():
        raise PromptSourceError(
            f"{where}: the prompt in field {field!r} is empty or only whitespace; write the prompt text "
            "there, or remove the record"
        )
    return Prompt(value, meta)


def _field_hint(field: str, present: Sequence[str]) -> str:
    close = difflib.get_close_matches(field, present, n=1, cutoff=0.6)
    if not close:
        close = [name for name in _COMMON_PROMPT_FIELDS if name in present][:1]
    if close:
        return f"Did you mean field={close[0]!r}? Pass it to name the field that holds the prompt text."
    return "Pass field=<name> to name the field that holds the prompt text."


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError as err:
        raise PromptSourceError(
            "reading a Hugging Face dataset needs the optional dependency 'datasets', which is not "
            'installed; install it with: pip install "textenv[data]"'
        ) from err
    return datasets


def _is_datasets_object(obj: Any) -> bool:
    # A datasets object can only exist once `datasets` has been imported, so look in sys.modules rather
    # than importing it (slow) for every other kind of spec.
    datasets = sys.modules.get("datasets")
    if datasets is None:
        return False
    kinds = tuple(
        kind for kind in (getattr(datasets, attr, None) for attr in _DATASETS_TYPES) if isinstance(kind, type)
    )
    return bool(kinds) and isinstance(obj, kinds)


def repeat_prompts(
    source: PromptSource, *, repeats: int = 1, limit: int | None = None
) -> tuple[list[str], dict[str, list[Any]]]:
    """The texts of the first ``limit`` prompts (all when ``None``), each ``repeats`` times in a row.

    Returns the texts and, for every metadata field that all those prompts carry (a ``reference``, say), the
    per-text values, ready for a reward's ``**meta``.
    """
    records = list(source)[:limit] if limit else list(source)
    records = [r for r in records for _ in range(repeats)]
    shared = set.intersection(*(set(r.meta) for r in records)) if records else set()
    return [r.text for r in records], {key: [r.meta[key] for r in records] for key in sorted(shared)}
