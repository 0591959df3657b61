"""What every built-in reward shares: a meaningful ``__name__`` (TRL labels metrics with it), and conversational
inputs (lists of chat messages, as TRL passes for chat datasets) read as the text they hold, in one place."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest

import rewards
from rewards.base import Reward

CHEAP = {  # built-ins that need no model and no optional package
    "length": {"target": 3},
    "keyword": {"keywords": ["good"]},
    "regex": {"pattern": r"\bday\b"},
    "repetition": {},
    "format": {"kind": "json"},
    "weighted_sum": {"terms": {"keyword": {"reward": "keyword", "keywords": ["good"]}, "length": {"reward": "length",
                                                                                                   "target": 2}}},
    "clip": {"reward": {"reward": "keyword", "keywords": ["good"]}, "low": 0, "high": 0.5},
    "normalize": {"reward": {"reward": "length", "target": 2}},
}  # fmt: skip
if find_spec("vaderSentiment") is not None:
    CHEAP["sentiment"] = {}

PROMPTS = ["Tell me about your day.", "Describe the film."]
COMPLETIONS = ["a good good day", '{"verdict": "good"}']


def _chat(prompt: str, completion: str) -> tuple[list[dict], list[dict]]:
    system = {"role": "system", "content": "Be brief."}
    return [system, {"role": "user", "content": prompt}], [{"role": "assistant", "content": completion}]


def test_every_builtin_has_its_name_as_dunder_name():
    for name, kwargs in CHEAP.items():
        built = rewards.make(name, **kwargs)
        assert isinstance(built.fn, Reward)
        assert built.__name__.split("(")[0] == name
        assert built.__name__ == built.fn.__name__
    assert rewards.KeywordReward(["good"]).__name__ == "keyword"
    assert rewards.KeywordReward.__name__ == "KeywordReward"  # the class keeps its own name


def test_names_say_what_combinators_and_learned_rewards_are_made_of(tiny_rm_dir):
    assert rewards.make("clip", **CHEAP["clip"]).__name__ == "clip(keyword)"
    assert rewards.make("normalize", **CHEAP["normalize"]).__name__ == "normalize(length)"
    assert rewards.make("weighted_sum", **CHEAP["weighted_sum"]).__name__ == "weighted_sum(keyword+length)"
    assert rewards.make("learned", path=tiny_rm_dir).__name__ == f"learned({tiny_rm_dir.name})"


def test_two_rewards_in_one_trainer_get_two_names():
    # TRL's trainers key metrics by __name__: these two must not merge under one name.
    funcs = [rewards.make("length", target=3), rewards.make("keyword", keywords=["good"])]
    assert [f.__name__ for f in funcs] == ["length", "keyword"]
    own = rewards.resolve(lambda p, c, **m: [0.0] * len(c))
    assert own.__name__ == "<lambda>"  # a function of the user's keeps its own name


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_conversational_inputs_score_as_their_text(name):
    reward = rewards.make(name, **CHEAP[name])
    plain = reward(PROMPTS, COMPLETIONS)
    chats = [_chat(p, c) for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    reward = rewards.make(name, **CHEAP[name])  # fresh: normalize keeps running statistics
    np.testing.assert_allclose(reward([p for p, _ in chats], [c for _, c in chats]), plain)
    # TRL calls with keywords, and the bare built-in (no ValidatedReward) reads them too
    bare = rewards.make(name, **CHEAP[name]).fn
    np.testing.assert_allclose(bare(prompts=[p for p, _ in chats], completions=[c for _, c in chats]), plain)


def test_content_parts_and_several_assistant_messages():
    reward = rewards.KeywordReward(["good"], mode="count")
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "good "}, {"type": "text", "text": "good"}]}]
    two = [{"role": "assistant", "content": "good"}, {"role": "tool", "content": "good"},
           {"role": "assistant", "content": "good"}]  # fmt: skip
    np.testing.assert_array_equal(reward(["p", "p"], [parts, two]), [2.0, 2.0])


@pytest.mark.parametrize(
    "completion", [42, None, [{"content": "no role"}], [{"role": "assistant"}], {"role": "assistant", "content": "x"}]
)
def test_anything_else_is_a_typed_error_naming_reward_and_position(completion):
    for reward in (rewards.KeywordReward(["good"]), rewards.make("keyword", keywords=["good"])):
        with pytest.raises(rewards.RewardInputError, match=r"reward 'keyword': completions\[1\]"):
            reward(["p", "p"], ["good", completion])


def test_every_registered_builtin_is_a_named_reward():
    from rewards.registry import _BUILTINS, _import_factory

    for name, target in _BUILTINS.items():
        factory = _import_factory(target)
        assert isinstance(factory, type), name
        assert issubclass(factory, Reward), name
        assert factory.name == name
