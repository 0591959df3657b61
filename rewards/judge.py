"""LM judge: a local causal language model asked a yes/no question about each completion.

The reward is the judge's log-odds of answering "Yes": ``log p(Yes | query) − log p(No | query)``, read
from its next-token distribution after a query that shows the text and asks the question. No sampling,
one forward pass per batch. It is positive when the judge leans towards "Yes", and, unlike the probability
itself, it does not saturate.

**Which tokens count as "Yes".** Tokenizers split " Yes" (with the space that follows "Answer:") and
"Yes" (at the start of a chat turn) into different tokens. The judge collects, for each answer word, the
first token of the word both with and without a leading space, and takes the log of the summed probability
of those tokens (a log-sum-exp), so the score is the same whichever spelling the model prefers. An answer
word that is several tokens long is represented by its first token; the yes and no token sets must not
overlap (``ValueError`` otherwise).

**The query.** With a chat model (a tokenizer with a chat template), the query is one user turn,
``CHAT_TEMPLATE``, followed by the template's generation prompt. Otherwise it is ``PLAIN_TEMPLATE``,
ending in ``"Answer:"``. Either can be replaced; a template is a ``str.format`` pattern with the fields
``{prompt}``, ``{completion}`` and ``{question}``. A query longer than ``max_length`` tokens loses tokens
from its start (the beginning of the prompt goes first), so the question at the end is always kept.

Only ``torch`` and ``transformers`` are needed (the package's own dependencies); they are imported when
the judge is first used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rewards._util import torch_device
from rewards.base import Reward
from textenv_common.checks import check_int
from textenv_common.hf import load_pretrained, load_tokenizer

__all__ = ["CHAT_TEMPLATE", "PLAIN_TEMPLATE", "LMJudge"]

PLAIN_TEMPLATE = "{prompt}{completion}\n\nQuestion: {question} Answer Yes or No.\nAnswer:"
"""The query for a base (non-chat) model; the answer token follows ``"Answer:"``."""

CHAT_TEMPLATE = "Read this text:\n\n{prompt}{completion}\n\n{question} Answer with Yes or No only."
"""The user turn for a chat model; the tokenizer's chat template wraps it."""


def _check_template(template: str, owner: str) -> None:
    try:
        template.format(prompt="", completion="", question="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"{owner}: template {template!r} must be a str.format pattern using only {{prompt}}, "
            f"{{completion}} and {{question}} (double any literal braces): {exc!r}"
        ) from None
    if "{completion}" not in template:
        raise ValueError(f"{owner}: template {template!r} never shows the {{completion}} to the judge")


class LMJudge(Reward):
    """Score each completion by a local LM's log-odds of answering "Yes" to a question about it.

    Args:
        model: A folder written by ``save_pretrained`` (loaded with ``AutoModelForCausalLM`` and
            ``AutoTokenizer`` on first use, safetensors only), or an already loaded causal LM (then pass
            ``tokenizer`` too). An instruct model answers questions best; SmolLM2-135M-Instruct is the
            smallest that helps.
        question: The yes/no question, e.g. ``"Is this review positive?"``.
        tokenizer: The tokenizer, when ``model`` is a model object; by default the model folder's.
        template: The query pattern; by default ``CHAT_TEMPLATE`` for chat models, else ``PLAIN_TEMPLATE``.
        chat: Use the tokenizer's chat template: ``True``, ``False``, or ``None`` (if it has one).
        yes: The answer word that counts as yes.
        no: The answer word that counts as no.
        batch_size: Queries per forward pass.
        max_length: Token limit per query (cut from the left).
        device: Torch device for a model loaded from a folder (a given model stays where it is).

    Raises:
        ValueError: If a folder does not exist, a template is malformed, the yes and no tokens overlap,
            or a number is not positive.
        TypeError: If ``model`` is an object and ``tokenizer`` is missing.
    """

    name: ClassVar[str] = "judge"

    def __init__(
        self,
        model: str | os.PathLike[str] | Any,
        question: str = "Is this text positive?",
        tokenizer: Any = None,
        template: str | None = None,
        chat: bool | None = None,
        yes: str = "Yes",
        no: str = "No",
        batch_size: int = 8,
        max_length: int = 512,
        device: str = "cpu",
    ) -> None:
        owner = type(self).__qualname__
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{owner}: question must be a non-empty str, got {question!r}")
        check_int(f"{owner}: batch_size", batch_size, 1)
        check_int(f"{owner}: max_length", max_length, 1)
        if template is not None:
            _check_template(template, owner)
        self.path: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        if isinstance(model, (str, os.PathLike)):
            folder = Path(model).expanduser()
            if not (folder / "config.json").is_file():
                raise ValueError(
                    f"{owner}: {str(model)!r} is not a model folder (no config.json there); pass a folder "
                    "written by save_pretrained, or a loaded model and tokenizer"
                )
            self.path = str(folder)
        else:
            if tokenizer is None:
                raise TypeError(f"{owner}: a model object needs its tokenizer: LMJudge(model, tokenizer=...)")
            self._model, self._tokenizer = model, tokenizer
        self.question = question
        self.template = template
        self.chat = chat
        self.yes = yes
        self.no = no
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.device = device
        self._answer_ids: tuple[list[int], list[int]] | None = None
        if self._tokenizer is not None:
            self._answer_ids = self._answers()

    # -- loading ------------------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM

        folder = str(self.path)
        device = torch_device(self.device)
        self._tokenizer = load_tokenizer(folder)
        self._model = load_pretrained(
            AutoModelForCausalLM, folder, tokenizer=self._tokenizer, device=device, use_safetensors=True
        )
        self._answer_ids = self._answers()

    def _answers(self) -> tuple[list[int], list[int]]:
        """Return the token ids that stand for yes and for no (see the module docstring)."""
        ids = []
        for word in (self.yes, self.no):
            found: list[int] = []
            for variant in (word, " " + word):
                encoded = self._tokenizer(variant, add_special_tokens=False)["input_ids"]
                if encoded and encoded[0] not in found:
                    found.append(int(encoded[0]))
            if not found:
                raise ValueError(f"{type(self).__qualname__}: the tokenizer encodes {word!r} to no tokens")
            ids.append(found)
        overlap = set(ids[0]) & set(ids[1])
        if overlap:
            raise ValueError(
                f"{type(self).__qualname__}: the answers {self.yes!r} and {self.no!r} start with the same "
                f"token(s) {sorted(overlap)} in this tokenizer, so the judge cannot tell them apart; "
                "choose other words"
            )
        return ids[0], ids[1]

    @property
    def uses_chat(self) -> bool:
        """Whether queries go through the tokenizer's chat template (loads the judge if needed)."""
        self._ensure_loaded()
        has_template = bool(getattr(self._tokenizer, "chat_template", None))
        return has_template if self.chat is None else bool(self.chat)

    # -- scoring ------------------------------------------------------------------------------------

    def query(self, prompt: str, completion: str) -> str:
        """Return the full text shown to the judge for one pair."""
        chat = self.uses_chat
        template = self.template or (CHAT_TEMPLATE if chat else PLAIN_TEMPLATE)
        text = template.format(prompt=prompt, completion=completion, question=self.question)
        if not chat:
            return text
        rendered: str = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return rendered

    def _encode(self, texts: Sequence[str]) -> tuple[Any, Any, Any]:
        """Tokenize, keep the last ``max_length`` tokens, left-pad; return ids, mask and position ids."""
        import torch

        # A chat rendering already holds its special tokens; a plain query gets the tokenizer's (e.g. BOS).
        # verbose=False: a query longer than the model is expected here; it is cut below.
        encoded = self._tokenizer(list(texts), add_special_tokens=not self.uses_chat, verbose=False)["input_ids"]
        rows = [ids[-self.max_length :] for ids in encoded]
        width = max(len(r) for r in rows)
        pad = self._tokenizer.pad_token_id
        pad = self._tokenizer.eos_token_id if pad is None else pad
        input_ids = torch.full((len(rows), width), int(pad or 0), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
                mask[i, width - len(row) :] = 1
        # Explicit positions, so a left-padded row is scored exactly as it would be alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids, mask, positions

    def log_odds(self, queries: Sequence[str]) -> npt.NDArray[np.float64]:
        """Return ``log p(yes) − log p(no)`` of the next token after each query."""
        import torch

        self._ensure_loaded()
        if self._answer_ids is None:
            self._answer_ids = self._answers()
        yes_ids, no_ids = self._answer_ids
        device = next(self._model.parameters()).device
        out = []
        for start in range(0, len(queries), self.batch_size):
            ids, mask, positions = self._encode(queries[start : start + self.batch_size])
            with torch.inference_mode():
                logits = self._model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                ).logits[:, -1, :]
            logp = torch.log_softmax(logits.float(), dim=-1)
            score = torch.logsumexp(logp[:, yes_ids], dim=-1) - torch.logsumexp(logp[:, no_ids], dim=-1)
            out.append(score.cpu().double().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float64)

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return the judge's yes-vs-no log-odds for each (prompt, completion); ``meta`` is unused."""
        return self.log_odds([self.query(p, c) for p, c in zip(prompts, completions, strict=True)])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.path is not None:  # reload from the folder in the new process rather than pickle weights
            state.update(_model=None, _tokenizer=None, _answer_ids=None)
        return state

    def __repr__(self) -> str:
        source = self.path if self.path is not None else type(self._model).__name__
        return f"{type(self).__qualname__}(model={source!r}, question={self.question!r})"
