"""HumanReward: scores typed in a terminal, skip, timeout, end of input, pickling, the registry, an env."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

import rewards
from rewards.human import HumanReward

PROMPTS = ["Describe the sea.", "Review the film.", "Say hi."]
COMPLETIONS = ["It is calm.", "Great \x1b[31mred\x1b[0m film.", "Hi!"]


def _reward(script: str, **kwargs: object) -> tuple[HumanReward, io.StringIO]:
    out = io.StringIO()
    return HumanReward(input=io.StringIO(script), output=out, **kwargs), out  # type: ignore[arg-type]


def test_binary_scores_skip_and_retry_on_bad_input() -> None:
    reward, out = _reward("1\nmaybe\n0\ns\n")
    scores = reward(PROMPTS, COMPLETIONS)
    assert scores.dtype == np.float64
    np.testing.assert_array_equal(scores, [1.0, 0.0, 0.5])  # the skip scores the middle of the scale
    assert reward.last_status == ["answered", "answered", "skipped"]
    text = out.getvalue()
    assert "please type one of 0, 1" in text
    assert "Great \\x1b[31mred\\x1b[0m film." in text
    assert "\x1b" not in text
    assert "prompt: Review the film." in text


def test_likert_scale_batches_and_a_configured_default() -> None:
    reward, out = _reward("5\n1\nskip\n", scale="likert", batch_size=2, default=-1.0, show_prompt=False)
    np.testing.assert_array_equal(reward(PROMPTS, COMPLETIONS), [5.0, 1.0, -1.0])
    text = out.getvalue()
    assert "completions 1-2 of 3" in text
    assert "completions 3-3 of 3" in text
    assert "prompt:" not in text
    assert text.index("[2] completion") < text.index("score [1/3]")  # a batch is shown before its questions


def test_end_of_input_scores_the_rest_with_the_default() -> None:
    reward, out = _reward("4\n", scale="likert")
    np.testing.assert_array_equal(reward(PROMPTS, COMPLETIONS), [4.0, 3.0, 3.0])
    assert reward.last_status == ["answered", "eof", "eof"]
    assert "end of input" in out.getvalue()


def test_a_batch_times_out_and_a_late_answer_goes_to_the_next_question() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(read_fd, "r") as stdin:
            out = io.StringIO()
            reward = HumanReward(timeout=0.3, batch_size=3, input=stdin, output=out)
            os.write(write_fd, b"1\n")  # the first answer comes in time, then nothing
            scores = reward(PROMPTS, COMPLETIONS)
            np.testing.assert_array_equal(scores, [1.0, 0.5, 0.5])
            assert reward.last_status == ["answered", "timeout", "timeout"]
            assert "no answer within 0.3 s" in out.getvalue()
            os.write(write_fd, b"0\n")  # typed after the deadline: answers the next call's first question
            assert reward(PROMPTS[:1], COMPLETIONS[:1])[0] == 0.0
    finally:
        os.close(write_fd)


def test_it_pickles_is_registered_and_validates_its_arguments() -> None:
    reward = rewards.make("human", scale="likert", timeout=5)
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.name == "human"
    assert clone.fn.scale == "likert"
    assert clone.fn.default == 3.0
    for kwargs, match in (
        ({"scale": "stars"}, "scale must be"),
        ({"batch_size": 0}, "batch_size"),
        ({"timeout": -1}, "timeout"),
        ({"default": float("nan")}, "default"),
    ):
        with pytest.raises(ValueError, match=match):
            HumanReward(**kwargs)  # type: ignore[arg-type]


def test_an_env_asks_a_person_at_the_end_of_each_episode() -> None:
    import gymnasium as gym

    import textenv  # noqa: F401  (registers the ids)

    reward, out = _reward("1\n0\n")
    env = gym.make("textenv/Toy-v0", reward=reward, max_new_tokens=3)
    for expected in (1.0, 0.0):
        env.reset(seed=0)
        done, info = False, {}
        while not done:
            _, _, done, _, info = env.step(env.action_space.sample())
        assert info["rm_score"] == expected
    assert out.getvalue().count("score [1/1]") == 2
