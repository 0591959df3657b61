"""Tests of textenv.prompts: every constructor, load_prompts resolution, determinism, pickling, errors."""

from __future__ import annotations

import ast
import copy
import csv
import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from textenv.errors import ConfigError, PromptSourceError
from textenv.prompts import BUILTIN_PROMPT_SETS, Prompt, PromptSource, load_prompts

# The toy tokenizer's words as the brief listed them, used only if textenv/toy.py is absent.
FALLBACK_TOY_WORDS = frozenset(
    {"the", "movie", "was", "is", "a", "it", "and", "very", "i", "think", "this", "food", "day", "book"}
    | {"say", "something", "about", "my", "today"}
)


def toy_words() -> frozenset[str]:
    """The toy vocabulary, read from textenv/toy.py's ``TOY_WORDS`` literal without importing torch."""
    spec = importlib.util.find_spec("textenv.toy")
    if spec is None or spec.origin is None:
        return FALLBACK_TOY_WORDS
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "TOY_WORDS" and node.value is not None:
            return frozenset(ast.literal_eval(node.value))
    raise AssertionError("textenv/toy.py has no TOY_WORDS literal")


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


# --- Prompt -------------------------------------------------------------------------------------------------


def test_prompt_defaults_copies_meta_and_hashes_on_text() -> None:
    assert Prompt("hi").meta == {}
    meta = {"reference": "r"}
    prompt = Prompt("hi", meta)
    meta["reference"] = "changed"
    assert prompt.meta == {"reference": "r"}
    assert Prompt("hi", {"a": [1]}) == Prompt("hi", {"a": [1]})
    assert Prompt("hi", {"a": 1}) != Prompt("hi", {"a": 2})
    assert hash(Prompt("hi", {"a": [1]})) == hash(Prompt("hi"))  # unhashable meta values are fine


def test_prompt_rejects_wrong_types() -> None:
    with pytest.raises(TypeError, match=r"Prompt\.text must be a str"):
        Prompt(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Prompt\.meta must be a mapping"):
        Prompt("x", ["a"])  # type: ignore[arg-type]


# --- PromptSource and its constructors ----------------------------------------------------------------------


def test_from_list_strings_mappings_and_prompts() -> None:
    source = PromptSource.from_list(["a b", {"prompt": "c", "reference": "d", "id": 7}, Prompt("e", {"k": 1})])
    assert len(source) == 3
    assert source.texts == ("a b", "c", "e")
    assert source[1] == Prompt("c", {"reference": "d", "id": 7})
    assert source[np.int64(2)].meta == {"k": 1}
    assert source[-1].text == "e"
    assert [p.text for p in source] == ["a b", "c", "e"]
    assert source.name == "prompt list"
    assert repr(source) == "PromptSource(name='prompt list', n=3)"


def test_from_list_custom_field_and_name() -> None:
    source = PromptSource.from_list([{"query": "q1", "answer": "a1"}], field="query", name="mine")
    assert source.name == "mine"
    assert source[0] == Prompt("q1", {"answer": "a1"})


def test_direct_construction_converts_to_tuple_and_checks_elements() -> None:
    source = PromptSource([Prompt("x")], name="direct")  # type: ignore[arg-type]
    assert source.prompts == (Prompt("x"),)
    with pytest.raises(TypeError, match="from_list"):
        PromptSource(("x",), name="bad")  # type: ignore[arg-type]


def test_from_jsonl_skips_blank_lines_and_keeps_meta(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "Summarise: cats sleep.", "reference": "Cats sleep.", "n": 2}\n\n   \n"bare string"\n',
        encoding="utf-8",
    )
    source = PromptSource.from_jsonl(path)
    assert source.name == str(path)
    assert source[0] == Prompt("Summarise: cats sleep.", {"reference": "Cats sleep.", "n": 2})
    assert source[1] == Prompt("bare string")


def test_from_jsonl_keeps_leading_space_and_accepts_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": " The plot"}\n')
    assert PromptSource.from_jsonl(path)[0].text == " The plot"


def test_from_csv(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        [["id", "prompt", "reference"], ["1", "Hello, world", "r1"], ["2", 'He said "hi"', "r2"]],
    )
    source = PromptSource.from_csv(path)
    assert source.texts == ("Hello, world", 'He said "hi"')
    assert source[0].meta == {"id": "1", "reference": "r1"}


def test_from_csv_multiline_value_and_custom_field(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [["text"], ["line one\nline two"], ["x"]])
    assert PromptSource.from_csv(path, field="text").texts == ("line one\nline two", "x")


# --- sampling, pickling, equality ---------------------------------------------------------------------------


def test_sample_is_deterministic_for_a_seed() -> None:
    source = PromptSource.from_list([f"prompt {i}" for i in range(50)])
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    first = [source.sample(rng_a).text for _ in range(30)]
    second = [source.sample(rng_b).text for _ in range(30)]
    assert first == second
    assert len(set(first)) > 1


def test_sample_uses_only_the_given_generator() -> None:
    source = PromptSource.from_list([f"prompt {i}" for i in range(50)])
    expected = [source[int(i)].text for i in np.random.default_rng(3).integers(50, size=1)]
    # Disturbing the global numpy and stdlib random state must not change the draws.
    np.random.seed(123)
    np.random.random(10)
    rng = np.random.default_rng(3)
    assert [source.sample(rng).text] == expected
    # The draw consumed exactly one rng.integers(len) call.
    rng_copy = np.random.default_rng(3)
    rng_copy.integers(50)
    assert rng.integers(1 << 30) == rng_copy.integers(1 << 30)


def test_sample_rejects_non_generator() -> None:
    source = PromptSource.from_list(["a"])
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        source.sample(np.random.RandomState(0))  # type: ignore[arg-type]


def test_pickle_and_deepcopy_round_trip(tmp_path: Path) -> None:
    source = PromptSource.from_list([{"prompt": "a", "reference": ["x", "y"]}, "b"], name="s")
    for clone in (pickle.loads(pickle.dumps(source)), copy.deepcopy(source)):
        assert clone == source
        assert clone[0].meta == {"reference": ["x", "y"]}
    builtin = load_prompts("builtin:toy")
    assert pickle.loads(pickle.dumps(builtin)) == builtin


def test_equality_and_hash() -> None:
    assert PromptSource.from_list(["a", "b"], name="n") == PromptSource.from_list(["a", "b"], name="n")
    assert PromptSource.from_list(["a", "b"], name="n") != PromptSource.from_list(["b", "a"], name="n")
    assert hash(PromptSource.from_list(["a"], name="n")) == hash(PromptSource.from_list(["a"], name="n"))


# --- load_prompts resolution --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_PROMPT_SETS))
def test_builtins_load_and_are_clean(name: str) -> None:
    source = load_prompts(name)
    assert source.name == name
    assert len(source) >= 20
    assert all(p.text.strip() and p.text == p.text.strip() for p in source)
    assert len(set(source.texts)) == len(source)


def test_review_openings_are_many() -> None:
    assert len(load_prompts("builtin:review_openings")) >= 50


def test_review_verdicts_stop_before_the_verdict() -> None:
    texts = load_prompts("builtin:review_verdicts").texts
    assert len(texts) >= 40
    assert len(set(texts)) == len(texts)
    assert all(t.split()[-1] in {"is", "was", "are", "were", "feels"} for t in texts)


def test_toy_prompts_use_only_toy_words() -> None:
    words = toy_words()
    for prompt in load_prompts("builtin:toy"):
        tokens = prompt.text.split()
        assert 2 <= len(tokens) <= 6, prompt.text
        assert set(tokens) <= words, (prompt.text, set(tokens) - words)


def test_load_prompts_passes_a_source_through() -> None:
    source = PromptSource.from_list(["a"])
    assert load_prompts(source) is source


@pytest.mark.parametrize("suffix", [".jsonl", ".json-lines", ".JSONL", ".ndjson"])
def test_load_prompts_jsonl_by_suffix(tmp_path: Path, suffix: str) -> None:
    path = write_jsonl(tmp_path / f"p{suffix}", [{"prompt": "a"}])
    assert load_prompts(path).texts == ("a",)
    assert load_prompts(str(path)).texts == ("a",)


def test_load_prompts_csv_and_field(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", [["question"], ["q?"]])
    assert load_prompts(path, field="question").texts == ("q?",)


def test_load_prompts_sequences() -> None:
    assert load_prompts(["a", "b"]).texts == ("a", "b")
    assert load_prompts(({"text": "c"},), field="text").texts == ("c",)


def test_load_prompts_rejects_unknown_kinds(tmp_path: Path) -> None:
    with pytest.raises(PromptSourceError, match=r"cannot load prompts from int.*accepts"):
        load_prompts(42)
    other = tmp_path / "p.txt"
    other.write_text("a\n", encoding="utf-8")
    with pytest.raises(PromptSourceError, match=r"cannot tell the format of .*p\.txt.*\.jsonl"):
        load_prompts(other)
    with pytest.raises(PromptSourceError, match=r"not an existing file or folder.*pass a list: \['hello'\]"):
        load_prompts("hello")


def test_load_prompts_unknown_builtin_suggests() -> None:
    with pytest.raises(PromptSourceError, match=r"no builtin prompt set.*Did you mean 'builtin:toy'"):
        load_prompts("builtin:toys")


def test_field_must_be_a_non_empty_string() -> None:
    with pytest.raises(ConfigError, match="field must be a non-empty string"):
        load_prompts(["a"], field="")


# --- errors -------------------------------------------------------------------------------------------------


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    for load in (load_prompts, PromptSource.from_jsonl, PromptSource.from_csv):
        with pytest.raises(PromptSourceError, match=r"nope\.jsonl.*does not exist.*check the path"):
            load(path)


def test_folder_given_as_file(tmp_path: Path) -> None:
    with pytest.raises(PromptSourceError, match=r"is a folder, not a JSON Lines file.*from_dataset"):
        PromptSource.from_jsonl(tmp_path)


def test_empty_sources_say_so(tmp_path: Path) -> None:
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(PromptSourceError, match=r"'.*blank\.jsonl' holds no prompts.*add at least one"):
        load_prompts(blank)
    with pytest.raises(PromptSourceError, match="holds no prompts"):
        load_prompts([])
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("", encoding="utf-8")
    with pytest.raises(PromptSourceError, match=r"empty\.csv' holds no prompts"):
        load_prompts(empty_csv)
    header_only = write_csv(tmp_path / "header.csv", [["prompt"]])
    with pytest.raises(PromptSourceError, match=r"header\.csv' holds no prompts"):
        load_prompts(header_only)


def test_invalid_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n\n{"prompt": "broken}\n', encoding="utf-8")
    with pytest.raises(PromptSourceError, match=r"bad\.jsonl:3: not valid JSON.*one JSON object") as info:
        load_prompts(path)
    assert isinstance(info.value, ValueError)


def test_missing_field_lists_fields_and_suggests(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", [{"prompt": "ok"}, {"prompts": "x", "label": 1}])
    with pytest.raises(PromptSourceError) as info:
        load_prompts(path)
    message = str(info.value)
    assert "f.jsonl:2" in message
    assert "no field 'prompt'" in message
    assert "'prompts', 'label'" in message
    assert "Did you mean field='prompts'?" in message


def test_missing_field_suggests_a_common_name_when_none_is_close() -> None:
    with pytest.raises(PromptSourceError, match=r"item 0: .*no field 'prompt'.*field='text'"):
        load_prompts([{"id": 1, "text": "x"}])
    with pytest.raises(PromptSourceError, match=r"no field 'prompt'.*Pass field=<name>"):
        load_prompts([{"id": 1, "body": "x"}])
    with pytest.raises(PromptSourceError, match=r"item 0: the record is empty"):
        load_prompts([{}])


def test_csv_missing_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", [["id", "Prompt"], ["1", "a"]])
    with pytest.raises(PromptSourceError, match=r"c\.csv:1: the header has no column 'prompt'.*field='Prompt'"):
        load_prompts(path)


def test_csv_ragged_rows(tmp_path: Path) -> None:
    long_row = tmp_path / "long.csv"
    long_row.write_text("prompt,id\na,1\nb,2,3\n", encoding="utf-8")
    with pytest.raises(PromptSourceError, match=r"long\.csv:3: the row has more values"):
        load_prompts(long_row)
    short_row = tmp_path / "short.csv"
    short_row.write_text("prompt,id\na\n", encoding="utf-8")
    with pytest.raises(PromptSourceError, match=r"short\.csv:2: the row has fewer values"):
        load_prompts(short_row)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("prompt\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(PromptSourceError, match=r"latin\.csv: not UTF-8.*save the file as UTF-8"):
        load_prompts(path)


def test_non_string_value(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "n.jsonl", [{"prompt": "ok"}, {"prompt": 5}])
    with pytest.raises(PromptSourceError, match=r"n\.jsonl:2: the prompt in field 'prompt' is a int.*not a string"):
        load_prompts(path)
    with pytest.raises(PromptSourceError, match=r"item 1: expected a string or a mapping.*got int"):
        load_prompts(["ok", 3])
    with pytest.raises(PromptSourceError, match=r"n2\.jsonl:1: expected a string or a mapping.*got list"):
        load_prompts(write_jsonl(tmp_path / "n2.jsonl", [["a"]]))


def test_empty_prompt_text_names_the_record(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [{"prompt": "ok"}, {"prompt": "ok"}, {"prompt": "  \t"}])
    with pytest.raises(PromptSourceError, match=r"e\.jsonl:3: the prompt in field 'prompt' is empty"):
        load_prompts(path)
    with pytest.raises(PromptSourceError, match=r"item 1: the prompt .* is empty or only whitespace"):
        load_prompts(["a", ""])
    csv_path = write_csv(tmp_path / "e.csv", [["prompt"], ["a"], [""]])
    with pytest.raises(PromptSourceError, match=r"e\.csv:3: the prompt .* is empty"):
        load_prompts(csv_path)


def test_from_list_rejects_a_bare_string() -> None:
    with pytest.raises(PromptSourceError, match=r"wrap a single prompt in a list"):
        PromptSource.from_list("just one prompt")  # type: ignore[arg-type]


# --- Hugging Face datasets ----------------------------------------------------------------------------------


def test_from_dataset_in_memory_and_saved(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"prompt": ["a", "b"], "reference": ["ra", "rb"]})
    source = PromptSource.from_dataset(ds)
    assert source.texts == ("a", "b")
    assert source[1].meta == {"reference": "rb"}
    assert load_prompts(ds) == source

    folder = tmp_path / "saved"
    ds.save_to_disk(str(folder))
    from_disk = load_prompts(folder)
    assert from_disk.texts == ("a", "b")
    assert from_disk.name == str(folder)
    assert PromptSource.from_dataset(str(folder)).texts == ("a", "b")


def test_from_dataset_dict_splits(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["t1", "t2"]}),
        test=datasets.Dataset.from_dict({"text": ["e1"]}),
    )
    folder = tmp_path / "dd"
    dd.save_to_disk(str(folder))
    assert load_prompts(folder, field="text").texts == ("t1", "t2")
    test_split = load_prompts(folder, field="text", split="test")
    assert test_split.texts == ("e1",)
    assert test_split.name == f"{folder}[test]"
    assert load_prompts(dd, field="text", split="test").texts == ("e1",)
    with pytest.raises(PromptSourceError, match=r"no split 'tset'; its splits are .*Did you mean split='test'"):
        load_prompts(dd, field="text", split="tset")

    no_train = datasets.DatasetDict(validation=datasets.Dataset.from_dict({"text": ["v"]}))
    with pytest.raises(PromptSourceError, match=r"no 'train' split.*'validation'.*split=\.\.\."):
        load_prompts(no_train, field="text")


def test_from_dataset_errors(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"question": ["q"], "id": [1]})
    with pytest.raises(PromptSourceError, match=r"no column 'prompt'; its columns are 'question', 'id'.*field="):
        load_prompts(ds)
    with pytest.raises(PromptSourceError, match=r"row 0: the prompt in field 'id' is a int"):
        load_prompts(ds, field="id")
    not_a_dataset = tmp_path / "plain_folder"
    not_a_dataset.mkdir()
    with pytest.raises(PromptSourceError, match=r"plain_folder.*is not a dataset saved with"):
        load_prompts(not_a_dataset)
    with pytest.raises(PromptSourceError, match=r"does not exist or is not a folder"):
        PromptSource.from_dataset(tmp_path / "missing")
    with pytest.raises(PromptSourceError, match=r"expects a datasets\.Dataset.*got int"):
        PromptSource.from_dataset(3)
    iterable = datasets.Dataset.from_dict({"prompt": ["a"]}).to_iterable_dataset()
    with pytest.raises(PromptSourceError, match=r"IterableDataset must be materialised"):
        load_prompts(iterable)


def test_missing_datasets_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(PromptSourceError, match=r'pip install "textenv\[data\]"'):
        load_prompts(folder)
    with pytest.raises(PromptSourceError, match=r'pip install "textenv\[data\]"'):
        PromptSource.from_dataset(folder)
    # Other kinds of source keep working without datasets.
    assert load_prompts(["a"]).texts == ("a",)


# --- imports ------------------------------------------------------------------------------------------------


def test_import_is_light() -> None:
    code = (
        "import sys, textenv.prompts\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
