"""Supervised fine-tuning: demonstration shapes, loss masking, training, LoRA merging, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agents.cli import main
from agents.errors import ConfigError, DemonstrationError
from agents.sft import (
    Demonstration,
    SFTConfig,
    encode_demonstration,
    load_demonstrations,
    merge_lora,
    parse_demonstration,
    train_sft,
)
from agents.sft.data import IGNORE_INDEX, INSTRUCTION_TEMPLATE, INSTRUCTION_TEMPLATE_NO_INPUT
from textenv.models import load_model_and_tokenizer

DEMOS = [
    {"prompt": "the movie was", "response": " very good and fun"},
    {"prompt": "the book is", "completion": " great and i love it"},
    {"prompt": "the day was", "response": " nice and happy"},
    {"instruction": "say a good thing", "input": "the food", "output": "is great"},
    {"instruction": "say a nice thing", "output": "the sun is nice"},
    {"prompt": "the game was", "response": " the best"},
    {"prompt": "the music is", "response": " very nice"},
    {"prompt": "a friend is", "response": " good and fun"},
]


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_the_three_record_shapes() -> None:
    assert parse_demonstration(DEMOS[0]) == Demonstration("the movie was", " very good and fun")
    assert parse_demonstration(DEMOS[1]).response == " great and i love it"
    with_input = parse_demonstration(DEMOS[3])
    assert with_input.prompt == INSTRUCTION_TEMPLATE.format(instruction="say a good thing", input="the food")
    assert with_input.response == "is great"
    assert parse_demonstration(DEMOS[4]).prompt == INSTRUCTION_TEMPLATE_NO_INPUT.format(instruction="say a nice thing")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"prompt": "a"}', r"line 2: has 'prompt' but no 'response'"),
        ('{"prompt": "a", "response": ""}', r"line 2: field 'response' is empty"),
        ('{"prompt": 3, "response": "b"}', r"line 2: field 'prompt' must be a string; it is a int"),
        ('{"text": "a"}', r"line 2: unknown demonstration shape with fields \['text'\]"),
        ('["a", "b"]', "must be a JSON object"),
        ("{not json", r"line 2: not valid JSON"),
    ],
)
def test_a_bad_record_names_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_text(json.dumps(DEMOS[0]) + "\n" + line + "\n")
    with pytest.raises(DemonstrationError, match=match):
        load_demonstrations(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DemonstrationError, match="does not exist"):
        load_demonstrations(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DemonstrationError, match="holds no demonstrations"):
        load_demonstrations(tmp_path / "empty.jsonl")


def test_prompt_tokens_are_masked_and_the_response_ends_with_eos(tiny_lm_dir: Path) -> None:
    _, tok = load_model_and_tokenizer(tiny_lm_dir)
    demo = Demonstration("the movie was", " very good")
    row = encode_demonstration(tok, demo, max_length=64)
    prompt_ids = tok("the movie was")["input_ids"]
    response_ids = tok(" very good", add_special_tokens=False)["input_ids"]
    assert row["input_ids"] == [*prompt_ids, *response_ids, tok.eos_token_id]
    assert row["labels"] == [IGNORE_INDEX] * len(prompt_ids) + [*response_ids, tok.eos_token_id]
    assert row["attention_mask"] == [1] * len(row["input_ids"])


def test_a_long_demonstration_loses_the_start_of_its_prompt_first(tiny_lm_dir: Path) -> None:
    _, tok = load_model_and_tokenizer(tiny_lm_dir)
    demo = Demonstration("the cat and the dog and the sun", " good")  # 8 prompt tokens, 2 response tokens
    row = encode_demonstration(tok, demo, max_length=5)
    assert tok.decode(row["input_ids"][:3]) == "and the sun"
    assert row["labels"][:3] == [IGNORE_INDEX] * 3
    assert row["labels"][3:] == [tok("good")["input_ids"][0], tok.eos_token_id]
    only = encode_demonstration(tok, Demonstration("the", " good good good good"), max_length=3)
    assert only["labels"] == only["input_ids"]  # no room for the prompt: the response's start is kept


def test_full_fine_tuning_lowers_the_held_out_loss_and_saves_a_plain_model(tiny_lm_dir: Path, tmp_path: Path) -> None:
    data = _write(tmp_path / "demos.jsonl", DEMOS)
    config = SFTConfig(epochs=3, batch_size=4, learning_rate=3e-3, eval_fraction=0.25, progress=False)
    result = train_sft(data, tiny_lm_dir, tmp_path / "sft", config)
    m = result.metrics
    assert (m["train_demos"], m["eval_demos"]) == (6, 2)
    assert m["eval_loss"] < m["eval_loss_before"]
    files = {p.name for p in (tmp_path / "sft").iterdir()}
    assert {"model.safetensors", "config.json", "sft.json", "history.csv", "loss_curve.png"} <= files
    assert (tmp_path / "sft" / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    tuned, _ = load_model_and_tokenizer(tmp_path / "sft")
    base, _ = load_model_and_tokenizer(tiny_lm_dir)
    changed = [n for n, p in tuned.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
    assert changed
    with pytest.raises(ConfigError, match="already exists"):
        train_sft(data, tiny_lm_dir, tmp_path / "sft", config)


def test_merging_lora_gives_the_adapted_model_s_outputs(tiny_lm_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model

    model, _ = load_model_and_tokenizer(tiny_lm_dir)
    torch.manual_seed(0)
    # init_lora_weights=False: random, non-zero adapters, so the merge has something to add.
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules=["c_attn", "c_fc"], init_lora_weights=False, fan_in_fan_out=True)
    )
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
        plain, _ = load_model_and_tokenizer(tiny_lm_dir)
        assert not torch.allclose(adapted, plain(input_ids=ids).logits, atol=1e-4)
        merged = merge_lora(peft_model)
        assert not any("lora" in name for name, _ in merged.named_parameters())
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted, atol=1e-5, rtol=1e-5)


def test_lora_training_saves_a_merged_model_without_adapter_files(tiny_lm_dir: Path, tmp_path: Path) -> None:
    data = _write(tmp_path / "demos.jsonl", DEMOS)
    config = SFTConfig(epochs=2, batch_size=4, learning_rate=1e-2, lora=True, lora_r=4, progress=False)
    result = train_sft(data, tiny_lm_dir, tmp_path / "lora", config)
    files = {p.name for p in (tmp_path / "lora").iterdir()}
    assert "adapter_config.json" not in files
    assert "model.safetensors" in files
    tuned, _ = load_model_and_tokenizer(tmp_path / "lora")
    base, _ = load_model_and_tokenizer(tiny_lm_dir)
    assert [n for n, _ in tuned.named_parameters()] == [n for n, _ in base.named_parameters()]
    base_params = dict(base.named_parameters())
    changed = {n for n, p in tuned.named_parameters() if not torch.equal(p, base_params[n])}
    assert changed
    assert all(".attn." in n or ".mlp." in n for n in changed)  # only the adapted layers moved
    assert result.metrics["trainable_parameters"] < sum(p.numel() for p in base.parameters()) / 4


def test_the_sft_command(tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "demos.jsonl", DEMOS)
    out = tmp_path / "cli"
    args = ["sft", "--data", str(data), "--base", str(tiny_lm_dir), "--out", str(out), "--max-steps", "2",
            "--batch-size", "4", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "saved" in capsys.readouterr().out
    assert (out / "sft.json").exists()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args[:2], str(tmp_path / "none.jsonl"), *args[3:], "--overwrite"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"sft\.learning_rate must be a finite number"):
        SFTConfig(learning_rate=float("nan"))
    with pytest.raises(ConfigError, match=r"eval_fraction must be in \[0, 0\.5\]"):
        SFTConfig(eval_fraction=0.9)
    with pytest.raises(ConfigError, match="lora_target_modules"):
        SFTConfig(lora_target_modules=3)  # type: ignore[arg-type]
