"""``ModelCard``: what a saved :class:`~agents.policy.LMPolicy` needs to rebuild its language model elsewhere.

SB3's ``PPO.save`` keeps the policy's weights (its state dict) and the algorithm's ``policy_kwargs``; ``PPO.load``
builds the policy from those kwargs first and loads the weights into it after. A policy built without
``model=`` takes the model of the envs of its process, and a fresh process has none. So the policy keeps a card
in its state dict — the extra state of a small submodule, saved in SB3's ``policy.pth`` next to the weights —
holding the model's name, its ``config.json`` and its tokenizer files: kilobytes to a few MB, while the weights,
the bulk, are already the state dict's. A policy built without a model rebuilds its LM from the card when the
state dict is loaded into it (:meth:`LMPolicy.load_state_dict <agents.policy.LMPolicy.load_state_dict>`).

The card is serialised only when the state dict is taken (at save time), from the live config and tokenizer.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from textenv.errors import ConfigError
from textenv.models import build_from_config

__all__ = ["CARD_KEY", "ModelCard"]

#: The card's key in the policy's state dict (the policy's submodule ``model_card``).
CARD_KEY = "model_card._extra_state"


class ModelCard(nn.Module):
    """The name, config and tokenizer of a policy's LM, carried in the policy's state dict.

    Args:
        name: The hub id or folder the LM was loaded from (kept for messages and ``model=`` on reload).
        config: The LM's ``transformers`` config.
        tokenizer: Its tokenizer.
    """

    def __init__(self, name: str | None = None, config: Any = None, tokenizer: Any = None) -> None:
        super().__init__()
        self.name = name
        self._config = config
        self._tokenizer = tokenizer
        self._saved: dict[str, Any] = {}  # a loaded card's state, until it is built

    def get_extra_state(self) -> dict[str, Any]:
        """Plain data only (SB3 reads ``policy.pth`` with ``torch.load(weights_only=True)``)."""
        if self._config is None or self._tokenizer is None:
            return dict(self._saved)
        with tempfile.TemporaryDirectory(prefix="textenv-card-") as tmp:
            self._tokenizer.save_pretrained(tmp)
            files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
        config = json.loads(self._config.to_json_string(use_diff=False))
        return {"name": self.name, "config": config, "tokenizer_files": files}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ConfigError(f"The saved policy's model card is {type(state).__name__}, not a mapping.")
        self._saved = dict(state)
        self.name = state.get("name", self.name)

    def build(self, dtype: str | None = None) -> tuple[Any, Any]:
        """The card's architecture with fresh weights, and its tokenizer (see ``build_from_config``)."""
        state = self._saved
        if not isinstance(state.get("config"), dict) or not isinstance(state.get("tokenizer_files"), dict):
            raise ConfigError(
                "The saved policy holds no model card (config and tokenizer), so LMPolicy cannot tell which model "
                "to rebuild (a file saved before textenv kept one): load it with "
                "policy_kwargs={'model': '<hub id or folder of the model it was trained on>'}."
            )
        with tempfile.TemporaryDirectory(prefix="textenv-card-") as tmp:
            folder = Path(tmp)
            (folder / "config.json").write_text(json.dumps(state["config"]), encoding="utf-8")
            for name, data in state["tokenizer_files"].items():
                (folder / Path(name).name).write_bytes(data)  # a bare file name: never outside the folder
            lm, tokenizer = build_from_config(folder, dtype=dtype)
        self._config, self._tokenizer = lm.config, tokenizer
        return lm, tokenizer

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
