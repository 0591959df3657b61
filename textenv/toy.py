"""The toy task's language model: a word-level vocabulary of 67 words and a two-layer GPT-2.

The toy model exists so that an episode of the toy env runs in milliseconds, offline, with text a person
can read. Its tokenizer maps each word of :data:`TOY_WORDS` to one token, so a completion is a sequence of
plain words and the action space is small (``Discrete(70)``). Its weights are random but fixed: they are
drawn under ``torch.manual_seed(0)``, so every machine builds the same model.

Token ids:

* ``0`` ``"<pad>"``, ``1`` ``"<eos>"``, ``2`` ``"<unk>"``;
* ``3 + i`` is ``TOY_WORDS[i]``.

The model is built once into ``<cache>/models/toy-gpt2-v0`` and reused; ``load_model_and_tokenizer(
"textenv/toy-gpt2")`` in :mod:`textenv.models` returns it. Change the recipe only together with the ``v0``
in :data:`TOY_MODEL_FOLDER`, so an old cached build is never mistaken for a new one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from textenv.cache import atomic_folder, cache_dir

__all__ = [
    "EOS_TOKEN",
    "PAD_TOKEN",
    "TOY_MODEL_FOLDER",
    "TOY_WORDS",
    "UNK_TOKEN",
    "build_toy_model",
    "build_toy_tokenizer",
    "toy_model_dir",
]

PAD_TOKEN = "<pad>"
"""Padding token, id 0."""
EOS_TOKEN = "<eos>"
"""End-of-sequence token, id 1: ends an episode."""
UNK_TOKEN = "<unk>"
"""Stands for any word not in :data:`TOY_WORDS`, id 2."""

TOY_MODEL_FOLDER = "toy-gpt2-v0"
"""Name of the toy model's folder under ``<cache>/models``."""

TOY_WORDS: tuple[str, ...] = (
    # positive
    "good", "great", "happy", "love", "nice", "fun", "best", "yes",
    # negative
    "bad", "sad", "awful", "hate", "no", "worst",
    # neutral nouns
    "cat", "dog", "sun", "day", "food", "movie", "book", "game",
    "music", "friend", "house", "tree", "water", "city", "time", "people",
    # verbs
    "is", "was", "are", "like", "see", "make", "go", "play", "eat", "read",
    # function words
    "the", "a", "an", "and", "but", "or", "it", "i", "you", "we", "this", "that", "very", "not", "to", "of",
    "so",
    # digits
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
)  # fmt: skip
"""The toy vocabulary: lowercase words and digits, one token each, ids ``3 ..= 69`` in this order."""


def build_toy_tokenizer() -> PreTrainedTokenizerFast:
    """Build the word-level tokenizer of the toy model.

    Text is lower-cased and split on whitespace and punctuation; each word of :data:`TOY_WORDS` is one token
    and every other word becomes ``"<unk>"``. Decoding joins tokens with single spaces.

    Returns:
        A fast tokenizer with 70 tokens, ``pad_token="<pad>"`` (id 0), ``eos_token="<eos>"`` (id 1) and
        ``unk_token="<unk>"`` (id 2). Padding is on the left, as the env's context window needs.
    """
    vocab = {token: i for i, token in enumerate((PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, *TOY_WORDS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    # No decoder is set on purpose: without one, `tokenizers` joins the tokens with single spaces, which is
    # exactly the text of a word-level vocabulary (tests/textenv/test_toy.py checks it).
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=64,
    )
    return tokenizer


def build_toy_model(tokenizer: PreTrainedTokenizerFast, *, n_positions: int = 64) -> GPT2LMHeadModel:
    """Build the toy GPT-2 with weights drawn under a fixed seed.

    The caller's global torch RNG is left as it was.

    Args:
        tokenizer: The tokenizer whose vocabulary size and special ids the model takes.
        n_positions: Longest sequence (prompt and completion) the model accepts.

    Returns:
        A two-layer, two-head GPT-2 with 64-wide embeddings, in eval mode.
    """
    eos_id = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=64,
        n_layer=2,
        n_head=2,
        # GPT-2's convention: one end-of-text token is both BOS and EOS.
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos_id,
        eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    return model.eval()


def toy_model_dir(root: Path | None = None) -> Path:
    """Return the folder of the toy model, building it the first time.

    The folder is written under a temporary name and renamed into place, so a crash never leaves a half
    written folder behind; when two processes build it at once, the first rename wins and both use it.

    Args:
        root: Cache root; defaults to :func:`textenv.cache.cache_dir`.

    Returns:
        ``<root>/models/toy-gpt2-v0``, holding ``config.json``, ``model.safetensors`` and the tokenizer.
    """
    folder = (cache_dir() if root is None else Path(root)) / "models" / TOY_MODEL_FOLDER
    if folder.is_dir():
        return folder
    tokenizer = build_toy_tokenizer()
    model = build_toy_model(tokenizer)
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder
