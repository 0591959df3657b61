"""Every TrainConfig field is a flag of train, compare and demo, generated from the dataclass and its docstrings."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from agents.cli import _overrides, build_parser
from agents.config import TrainConfig, load_config
from agents.config_flags import add_dataclass_flags, field_docs

_SAMPLE = {"int": "3", "float": "0.5", "str": "cpu"}


@pytest.mark.parametrize("command", ["train", "compare", "demo"])
def test_every_field_is_a_flag(command):
    own = {"env", "algo", "seed"} | ({"budget_tokens"} if command != "train" else set())
    for f in dataclasses.fields(TrainConfig):
        if f.name in own:
            continue
        kind = str(f.type).split("|")[0].strip()
        value = str(f.default) if isinstance(f.default, str) else _SAMPLE.get(kind, "{}")  # a valid choice
        args = build_parser().parse_args([command, "--" + f.name.replace("_", "-"), value])
        assert f.name in _overrides(args), f.name


def test_every_field_has_its_docstring_as_help():
    docs = field_docs(TrainConfig)
    assert set(docs) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert docs["gamma"] == "Discount: 1 because the reward model pays at the episode's end."


def test_help_shows_each_fields_docstring(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--gae-lambda FLOAT GAE λ. (TrainConfig.gae_lambda; default 0.95)" in shown
    assert "--env-kwargs YAML Overrides of the env's defaults" in shown


@dataclasses.dataclass
class _Needs:
    name: str
    """Which one."""
    tags: list[str] = dataclasses.field(default_factory=lambda: ["a"])
    """Labels."""


def test_help_says_a_field_without_default_has_none_and_shows_a_factorys_value():
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, _Needs)
    shown = " ".join(parser.format_help().split())
    assert "--name STR Which one. (_Needs.name; no default: the config file or this flag must set it)" in shown
    assert "--tags YAML Labels. (_Needs.tags; default ['a'])" in shown
    assert "'{}'" not in shown


def test_pipeline_name_is_the_generated_flag_of_its_required_field(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pipeline", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--name STR The run's name" in shown
    assert "(PipelineConfig.name; no default" in shown
    assert shown.count("--name STR") == 2  # the usage line and the one flag


def test_flag_values_reach_the_config_over_the_preset():
    args = build_parser().parse_args([
        "train", "--preset", "tiny", "--learning-rate", "3e-4", "--n-epochs", "2", "--top-k", "5",
        "--lora", "{r: 4}", "--env-kwargs", "{max_new_tokens: 6, kl_coef: 0.1}", "--eval-holdout", "0",
    ])  # fmt: skip
    overrides = _overrides(args)
    assert overrides["learning_rate"] == 3e-4
    config = load_config(None, args.preset, env=args.env, algo=args.algo, seed=args.seed, **overrides)
    assert (config.learning_rate, config.n_epochs, config.top_k, config.lora) == (3e-4, 2, 5, {"r": 4})
    assert config.env_kwargs == {"max_new_tokens": 6, "kl_coef": 0.1}
    assert config.n_envs == 4  # not given: the preset's
    args = build_parser().parse_args(["train", "--top-k", "none"])
    assert "top_k" not in _overrides(args)  # none is the default: nothing to override
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--n-epochs", "two"])


def test_compare_leaves_the_fields_it_sets_to_its_own_flags():
    args = build_parser().parse_args(["compare", "--budget-tokens", "64", "--ent-coef", "0.01"])
    assert _overrides(args)["ent_coef"] == 0.01
    assert args.budget_tokens == 64
