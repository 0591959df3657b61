"""Tests of the preference data: native pairs and ratings, the adapters, files, and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rewards import (
    PreferenceData,
    PreferenceDataError,
    PreferencePair,
    RatedCompletion,
    from_conversations,
    from_question_answers,
    load_preferences,
    write_jsonl,
)
from rewards.preferences import parse_record

PAIR = {"prompt": "Q: 2+2?\nA:", "chosen": " 4", "rejected": " 5"}
RATING = {
    "prompt": "Write a line.",
    "completion": " The sea is calm.",
    "ratings": {"coherence": 5, "creativity": 2, "relevance": 4.5, "fluency": 1},
}


def write_lines(path: Path, *lines: Any) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def test_native_pairs_and_ratings(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", PAIR, "", {**PAIR, "margin": 2, "id": 7}, RATING)
    data = load_preferences(path)
    assert data.pairs == (
        PreferencePair("Q: 2+2?\nA:", " 4", " 5"),
        PreferencePair("Q: 2+2?\nA:", " 4", " 5", margin=2.0),
    )
    assert data.ratings[0].ratings == {"coherence": 5.0, "creativity": 2.0, "relevance": 4.5, "fluency": 1.0}
    assert data.dimensions == ("coherence", "creativity", "relevance", "fluency")
    assert len(data) == 3
    assert data.skipped == ()
    assert data.sources == (str(path),)


def test_conversations_adapter_renders_the_dialogue() -> None:
    single = from_conversations(
        {
            "conversations": [{"from": "human", "value": "Hi!"}],
            "chosen": {"from": "gpt", "value": "Hello."},
            "rejected": {"from": "gpt", "value": "Go away."},
        }
    )
    assert single == PreferencePair("Human: Hi!\n\nAssistant: ", "Hello.", "Go away.")
    multi = from_conversations(
        {
            "conversations": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Red."},
                {"role": "user", "content": "Another?"},
            ],
            "chosen": "Blue.",
            "rejected": {"role": "assistant", "content": "No."},
        }
    )
    assert multi.prompt == (
        "System: Be brief.\n\nHuman: Name a colour.\n\nAssistant: Red.\n\nHuman: Another?\n\nAssistant: "
    )
    assert (multi.chosen, multi.rejected) == ("Blue.", "No.")


def test_question_answers_adapter_moves_the_assistant_prefix_into_the_prompt() -> None:
    record = {
        "Question": "Human: Hi?",
        "Answer1": "Assistant: Yes.",
        "Answer2": "Assistant: No.",
        "Preference": "Answer2",
    }
    assert from_question_answers(record) == PreferencePair("Human: Hi?\n\nAssistant: ", "No.", "Yes.")
    plain = from_question_answers({"Question": "Hi?", "Answer1": "A", "Answer2": "B", "Preference": 1})
    assert plain == PreferencePair("Human: Hi?\n\n", "A", "B")


def test_auto_detects_each_shape_in_one_file(tmp_path: Path) -> None:
    conv = {
        "conversations": [{"from": "human", "value": "Q"}],
        "chosen": {"value": "a"},
        "rejected": {"value": "b"},
    }
    qa = {"Question": "Q", "Answer1": "a", "Answer2": "b", "Preference": "Answer1"}
    data = load_preferences(write_lines(tmp_path / "mixed.jsonl", PAIR, conv, qa, RATING))
    assert len(data.pairs) == 3
    assert len(data.ratings) == 1


def test_json_array_files_name_the_item(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([PAIR, {**PAIR, "chosen": ""}]))
    with pytest.raises(PreferenceDataError, match=r"d\.json: item 2: 'chosen' is empty"):
        load_preferences(path)
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(PreferenceDataError, match="must hold an array"):
        load_preferences(path)


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", PAIR, '{"prompt": "x", "chosen": ', PAIR)
    with pytest.raises(PreferenceDataError) as info:
        load_preferences(path)
    message = str(info.value)
    assert f"{path}:2: malformed JSON" in message
    assert "--skip-bad-lines" in message


def test_skip_bad_lines_counts_and_skips(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        PAIR,
        "{oops",
        {**PAIR, "rejected": PAIR["chosen"]},
        {"prompt": "x", "chosen": "y"},
        {**RATING, "ratings": {"coherence": 6}},
        RATING,
    )
    data = load_preferences(path, skip_bad_lines=True)
    assert (len(data.pairs), len(data.ratings)) == (1, 1)
    assert len(data.skipped) == 4
    assert [s.split(": ", 1)[0] for s in data.skipped] == [f"{path}:{n}" for n in (2, 3, 4, 5)]


def test_a_file_without_good_records_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    with pytest.raises(PreferenceDataError, match=r"holds no preference pairs or ratings \(1 bad records skipped"):
        load_preferences(write_lines(tmp_path / "d.jsonl", "nope"), skip_bad_lines=True)
    with pytest.raises(PreferenceDataError, match="holds no preference pairs"):
        load_preferences(write_lines(tmp_path / "empty.jsonl", ""))


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"prompt": "p", "chosen": "a"}, "missing field 'rejected'"),
        ({"chosen": "a", "rejected": "b"}, "missing field 'prompt'"),
        ({**PAIR, "prompt": ""}, "'prompt' is empty"),
        ({**PAIR, "chosen": "   \n"}, "'chosen' is empty"),
        ({**PAIR, "rejected": 3}, "'rejected' must be a string, got int"),
        ({**PAIR, "rejected": PAIR["chosen"]}, "are the same text"),
        ({**PAIR, "margin": -1}, "'margin' must be a finite number >= 0"),
        (
            {**RATING, "ratings": {"coherence": 0}},
            "rating 'coherence' is 0; ratings must be numbers from 1 to 5",
        ),
        ({**RATING, "ratings": {"coherence": 5.5}}, "from 1 to 5"),
        ({**RATING, "ratings": {"coherence": True}}, "from 1 to 5"),
        ({**RATING, "ratings": {"coherence": "4"}}, "from 1 to 5"),
        ({**RATING, "ratings": {}}, "'ratings' must be a non-empty object"),
        ({"prompt": "p", "completion": "c"}, "missing field 'ratings'"),
        ({"conversations": [], "chosen": "a", "rejected": "b"}, "non-empty list of turns"),
        (
            {"conversations": [{"from": "robot", "value": "x"}], "chosen": "a", "rejected": "b"},
            "role 'robot'",
        ),
        ({"Question": "q", "Answer1": "a", "Answer2": "b", "Preference": "tie"}, "'Answer1' or 'Answer2'"),
        ({"Question": "q", "Answer1": "a", "Answer2": "b"}, "missing field 'Preference'"),
        ({"text": "hello"}, r"unrecognised record with the fields \['text'\]"),
        (["a", "b"], "expected a JSON object, got list"),
    ],
)
def test_bad_records_are_typed_errors(record: Any, match: str) -> None:
    with pytest.raises(PreferenceDataError, match=match):
        parse_record(record)


def test_ratings_must_share_their_dimensions(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.jsonl", RATING, {**RATING, "ratings": {"coherence": 3}})
    with pytest.raises(PreferenceDataError, match=r"r\.jsonl:2: the ratings have the dimensions \['coherence'\]"):
        load_preferences(path)
    a = PreferenceData(ratings=(RatedCompletion("p", "c", {"x": 1}),))
    b = PreferenceData(ratings=(RatedCompletion("p", "c", {"y": 1}),))
    with pytest.raises(PreferenceDataError, match="same dimensions"):
        a + b


def test_explicit_format_and_unknown_format() -> None:
    with pytest.raises(PreferenceDataError, match="missing field 'Question'"):
        parse_record(PAIR, format="qa")
    with pytest.raises(ValueError, match="format must be one of"):
        parse_record(PAIR, format="csv")  # type: ignore[arg-type]


def test_missing_file_and_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(PreferenceDataError, match="no such file"):
        load_preferences(tmp_path / "nope.jsonl")
    (tmp_path / "d.csv").write_text("prompt,chosen\n")
    with pytest.raises(PreferenceDataError, match=r"unsupported file type '\.csv'"):
        load_preferences(tmp_path / "d.csv")


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    pairs = [PreferencePair("p", "a", "b", margin=1.5), RatedCompletion("p", "c", {"fluency": 4})]
    path = tmp_path / "out" / "prefs.jsonl"
    assert write_jsonl(path, [*pairs, {"prompt": "é", "chosen": "x", "rejected": "y", "note": 1}]) == 3
    data = load_preferences(path)
    assert data.pairs[0] == pairs[0]
    assert data.ratings[0] == pairs[1]
    assert data.pairs[1].prompt == "é"
    assert "é" in path.read_text(encoding="utf-8")


def test_write_jsonl_leaves_nothing_half_written(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    path.write_text("old\n")

    def records() -> Iterator[PreferencePair]:
        yield PreferencePair("p", "a", "b")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_jsonl(path, records())
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.jsonl"]
