"""Tests of the reward registry: register/make/names, entry-point plug-ins, resolve and import weight."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rewards
from rewards import registry
from rewards.errors import (
    RewardConfigError,
    RewardError,
    RewardPluginWarning,
    UnknownRewardError,
)
from rewards.rules import LengthReward
from rewards.validation import ValidatedReward

PROMPTS = ["Describe the sea.", "Review the film."]
COMPLETIONS = ["The sea is calm and good today", "A wonderful, good film. I loved it!"]

# Every built-in with a valid configuration; the first test keeps this table complete.
BUILTIN_KWARGS: dict[str, dict[str, Any]] = {
    "clip": {"reward": {"reward": "length", "target": 5}, "low": -0.5},
    "format": {"kind": "sentence"},
    "keyword": {"keywords": ["good", "calm"], "mode": "count"},
    "length": {"target": 5, "tolerance": 1},
    "normalize": {"reward": "sentiment", "update": False},
    "offensive": {"scale": 1.0},
    "regex": {"pattern": r"\bgood\b", "mode": "count"},
    "repetition": {"n": 2},
    "rouge": {"reference": "The sea is good."},
    "sentiment": {"field": "compound"},
    "similarity": {"reference": "The sea is calm."},
    "weighted_sum": {"terms": {"length": {"target": 5}, "sentiment": 0.5}},
}
# Built-ins that need a model folder: tests/rewards/test_judge.py and test_learned.py build and pickle them.
NEEDS_A_MODEL = {"judge", "learned"}
# Built-ins that need a person: tests/rewards/human/test_reward.py builds and pickles them with scripted input.
NEEDS_A_PERSON = {"human"}


class ConstantReward:
    """A picklable test reward that gives every completion the same score."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
        return [self.value] * len(completions)


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each test the built-ins only, and no installed plug-ins, restoring the registry afterwards."""
    monkeypatch.setattr(registry, "_registry", dict(registry._BUILTINS))
    monkeypatch.setattr(registry, "_broken_plugins", {})
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(metadata, "entry_points", lambda **kwargs: [])


def install_plugins(monkeypatch: pytest.MonkeyPatch, *entry_points: metadata.EntryPoint) -> list[str]:
    """Make ``importlib.metadata.entry_points`` report ``entry_points``; returns the groups asked for."""
    asked: list[str] = []

    def fake_entry_points(**kwargs: Any) -> list[metadata.EntryPoint]:
        asked.append(kwargs["group"])
        return [ep for ep in entry_points if ep.group == kwargs["group"]]

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    return asked


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write an importable plug-in module to ``tmp_path`` and return its (unique) module name."""
    name = f"textenv_test_plugin_{uuid.uuid4().hex}"
    source = """
        class Scaled:
            def __init__(self, scale=1.0):
                self.scale = scale

            def __call__(self, prompts, completions, **meta):
                return [self.scale * len(c) for c in completions]

        def factory(scale=1.0):
            return Scaled(scale)

        not_callable = 42
    """
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def entry_point(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)


def test_builtins_are_registered_and_sorted() -> None:
    assert set(BUILTIN_KWARGS) | NEEDS_A_MODEL | NEEDS_A_PERSON == set(registry._BUILTINS), (
        "add new built-ins to BUILTIN_KWARGS"
    )
    names = rewards.names()
    assert names == sorted(names)
    assert set(BUILTIN_KWARGS) <= set(names)


@pytest.mark.parametrize("name", sorted(BUILTIN_KWARGS))
def test_every_builtin_builds_and_pickles(name: str) -> None:
    reward = rewards.make(name, **BUILTIN_KWARGS[name])
    assert isinstance(reward, ValidatedReward)
    assert reward.name == name
    scores = reward(PROMPTS, COMPLETIONS)
    assert scores.dtype == np.float64
    assert scores.shape == (2,)
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.name == name
    np.testing.assert_array_equal(clone(PROMPTS, COMPLETIONS), scores)


def test_register_then_make() -> None:
    rewards.register("constant", ConstantReward)
    assert "constant" in rewards.names()
    reward = rewards.make("constant", value=0.5)
    assert reward.name == "constant"
    np.testing.assert_array_equal(reward(PROMPTS, COMPLETIONS), [0.5, 0.5])


def test_register_duplicate_name_raises_unless_overwrite() -> None:
    rewards.register("constant", ConstantReward)
    with pytest.raises(RewardError, match=r"'constant' is already registered.*overwrite=True"):
        rewards.register("constant", LengthReward)
    rewards.register("constant", LengthReward, overwrite=True)
    assert isinstance(rewards.make("constant", target=2).fn, LengthReward)


def test_register_cannot_silently_replace_a_builtin() -> None:
    with pytest.raises(RewardError, match="'length' is already registered"):
        rewards.register("length", ConstantReward)


@pytest.mark.parametrize(
    ("name", "factory", "match"),
    [
        ("", ConstantReward, "reward name must be a non-empty str, got ''"),
        (3, ConstantReward, "reward name must be a non-empty str, got 3"),
        ("x", 3, "reward 'x': factory must be callable, got int 3"),
    ],
)
def test_register_rejects_bad_arguments(name: Any, factory: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        rewards.register(name, factory)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownRewardError) as info:
        rewards.make("lenght")
    message = str(info.value)
    assert "'lenght'" in message
    assert "Did you mean: 'length'?" in message
    assert "rewards.names()" in message
    assert "textenv list" in message
    assert isinstance(info.value, KeyError)


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(UnknownRewardError) as info:
        rewards.make("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_make_names_a_misspelled_kwarg_and_the_reward() -> None:
    with pytest.raises(RewardConfigError) as info:
        rewards.make("length", targt=3)
    message = str(info.value)
    assert "'length'" in message
    assert "'targt'" in message
    assert "did you mean 'target'?" in message
    assert isinstance(info.value, TypeError)


def test_make_names_a_missing_required_kwarg() -> None:
    with pytest.raises(RewardConfigError, match=r"rewards\.make\('length'\).*'target'"):
        rewards.make("length")


def test_make_lets_config_value_errors_through() -> None:
    with pytest.raises(ValueError, match="target must be an integer ≥ 0; got -1"):
        rewards.make("length", target=-1)


def test_make_rejects_a_factory_that_returns_no_function() -> None:
    rewards.register("broken", lambda: 3)  # type: ignore[arg-type,return-value]
    with pytest.raises(RewardError, match=r"'broken'.*returned int, which is not callable"):
        rewards.make("broken")


def test_make_does_not_double_wrap_a_validated_factory_result() -> None:
    rewards.register("wrapped", lambda: ValidatedReward("inner", ConstantReward()))
    reward = rewards.make("wrapped")
    assert reward.name == "wrapped"
    assert isinstance(reward.fn, ConstantReward)


def test_entry_point_plugin_loads_lazily_and_once(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    asked = install_plugins(monkeypatch, entry_point("myreward", f"{plugin_module}:factory"))
    assert asked == []  # nothing is looked up before the first make()/names()
    assert "myreward" in rewards.names()
    reward = rewards.make("myreward", scale=2.0)
    np.testing.assert_array_equal(reward(["p"], ["abc"]), [6.0])
    rewards.names()
    assert asked == [registry.ENTRY_POINT_GROUP]


def test_broken_entry_point_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    install_plugins(
        monkeypatch,
        entry_point("missing", f"{plugin_module}:no_such_factory"),
        entry_point("nomodule", "textenv_no_such_module_anywhere:factory"),
        entry_point("notcallable", f"{plugin_module}:not_callable"),
        entry_point("myreward", f"{plugin_module}:factory"),
    )
    with pytest.warns(RewardPluginWarning) as record:
        names = rewards.names()
    messages = " | ".join(str(w.message) for w in record)
    for bad in ("missing", "nomodule", "notcallable"):
        assert f"entry point {bad} =" in messages
        assert bad not in names
    assert "AttributeError" in messages
    assert "ModuleNotFoundError" in messages
    assert "myreward" in names
    assert "length" in names
    with pytest.raises(RewardError, match=r"'missing' is unavailable.*failed to load"):
        rewards.make("missing")


def test_builtin_wins_over_entry_point_of_the_same_name(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    install_plugins(monkeypatch, entry_point("length", f"{plugin_module}:factory"))
    with pytest.warns(RewardPluginWarning, match="'length' is already taken by a built-in"):
        reward = rewards.make("length", target=3)
    assert isinstance(reward.fn, LengthReward)


def test_failing_entry_point_listing_keeps_the_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_entry_points(**kwargs: Any) -> list[metadata.EntryPoint]:
        raise RuntimeError("corrupt metadata")

    monkeypatch.setattr(metadata, "entry_points", broken_entry_points)
    with pytest.warns(RewardPluginWarning, match="corrupt metadata"):
        assert "length" in rewards.names()


def test_resolve_name_builds_with_kwargs() -> None:
    reward = rewards.resolve("length", target=4)
    assert reward.name == "length"
    assert isinstance(reward.fn, LengthReward)
    assert reward.fn.target == 4


def plain_reward(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
    return [1.0 for _ in completions]


def test_resolve_callable_uses_its_name() -> None:
    assert rewards.resolve(plain_reward).name == "plain_reward"
    assert rewards.resolve(LengthReward(target=2)).name == "length"  # the class's ``name`` attribute
    assert rewards.resolve(ConstantReward()).name == "ConstantReward"  # falls back to the type name


def test_resolve_returns_a_validated_reward_unchanged() -> None:
    reward = rewards.make("length", target=2)
    assert rewards.resolve(reward) is reward


def test_resolve_rejects_kwargs_unless_given_a_name() -> None:
    with pytest.raises(TypeError, match="configure a reward given by name only"):
        rewards.resolve(plain_reward, target=3)
    with pytest.raises(TypeError, match="configure a reward given by name only"):
        rewards.resolve(rewards.make("length", target=2), target=3)


def test_resolve_rejects_a_class() -> None:
    with pytest.raises(TypeError, match=r"class LengthReward.*LengthReward\(\.\.\.\)"):
        rewards.resolve(LengthReward)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [42, None, ["length"]])
def test_resolve_rejects_other_types(spec: Any) -> None:
    with pytest.raises(TypeError, match=rf"cannot use a {type(spec).__name__} .*registered name"):
        rewards.resolve(spec)


def test_resolve_unknown_name_is_unknown_reward_error() -> None:
    with pytest.raises(UnknownRewardError, match="Did you mean: 'keyword'"):
        rewards.resolve("keywords")


def test_import_is_light() -> None:
    code = (
        "import rewards, sys\n"
        "heavy = [m for m in ('torch', 'transformers', 'textenv', 'agents', 'vaderSentiment') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
