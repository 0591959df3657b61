"""The docs name only extras that pyproject.toml defines (a README once listed a `rewards` extra that did not exist)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# `textenv[a,b]`, "the `label` extra", "(`lora` extra)", "extras: a, b, c" (the install line's comment)
_PATTERNS = (
    re.compile(r"textenv\[([a-z0-9_,-]+)\]"),
    re.compile(r"`([a-z0-9_-]+)` extra\b"),
    re.compile(r"\bextras: ([a-z0-9_, -]+?)(?:;|$)", re.MULTILINE),
)


def named_extras(text: str) -> set[str]:
    found: set[str] = set()
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            found.update(name.strip() for name in match.group(1).split(",") if name.strip())
    return found


def test_the_extras_pattern_sees_the_forms_the_docs_use():
    line = 'pip install -e ".[all,dev]"  # extras: gguf, data, sentiment, rewards, lora; dev = pytest'
    assert named_extras(line + '\nneeds the `rouge` extra, or pip install "textenv[label]"') == {
        "gguf", "data", "sentiment", "rewards", "lora", "rouge", "label"
    }  # fmt: skip


def test_every_extra_the_docs_and_messages_name_exists():
    defined = set(metadata.metadata("textenv").get_all("Provides-Extra") or ())  # pyproject's, as installed
    assert {"lora", "label", "sentiment"} <= defined
    files = [ROOT / "README.md", ROOT / "Makefile", *ROOT.glob("*.md")]
    for package in ("textenv", "rewards", "agents", "benchmarks", "examples"):
        files += sorted((ROOT / package).rglob("*.py"))
    for path in files:
        if path.is_file():
            missing = named_extras(path.read_text(encoding="utf-8")) - defined
            assert not missing, (
                f"{path.relative_to(ROOT)} names extras {sorted(missing)}; pyproject has {sorted(defined)}"
            )
