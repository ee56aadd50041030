"""Sentence embedders for dense retrieval and embedding rerankers. Heavy libraries load on use."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from openbook.embed.base import Embedder, EmbedderSettings, TextKind, unit_rows
from openbook.errors import OpenbookError, require_modules
from openbook.models import MODELS, resolve_model

DEFAULT_EMBEDDER = "all-minilm-l6-v2"


class _EmbedderArguments(TypedDict):
    """What every embedder class is built with (`GGUFEmbedder`, `SentenceTransformerEmbedder`)."""

    name: str
    location: str
    query_prefix: str
    passage_prefix: str
    batch_size: int
    max_tokens: int | None
    threads: int | None


def load_embedder(settings: EmbedderSettings) -> Embedder:
    """A registered name (pulled), a local folder (sentence-transformers) or .gguf file, or a hub id
    (sentence-transformers, only where the hub cache already holds it: nothing is downloaded)."""
    spec = MODELS.get(settings.model)
    if spec is not None and spec.kind != "embedder":
        raise OpenbookError(
            f"{settings.model} is a language model, not an embedder; "
            f"embedders: {', '.join(n for n, s in MODELS.items() if s.kind == 'embedder')}"
        )
    query_prefix = settings.query_prefix if settings.query_prefix is not None else (spec.query_prefix if spec else "")
    passage_prefix = (
        settings.passage_prefix if settings.passage_prefix is not None else (spec.passage_prefix if spec else "")
    )
    path = Path(settings.model).expanduser()
    if spec is not None or path.exists():
        location = str(resolve_model(settings.model))
    else:
        location = settings.model  # a hub id, for users whose hub cache holds it
    common = _EmbedderArguments(
        name=settings.model,
        location=location,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        batch_size=settings.batch_size,
        max_tokens=settings.max_tokens,
        threads=settings.threads,
    )
    if location.endswith(".gguf"):
        require_modules("llm", "llama_cpp")
        from openbook.embed.gguf import GGUFEmbedder

        return GGUFEmbedder(**common)
    require_modules("dense", "sentence_transformers")
    from openbook.embed.sentence_transformers import SentenceTransformerEmbedder

    try:
        return SentenceTransformerEmbedder(**common)
    except OSError as error:
        raise OpenbookError(f"cannot load embedder {settings.model!r} offline: {error}") from None


__all__ = ["DEFAULT_EMBEDDER", "Embedder", "EmbedderSettings", "TextKind", "load_embedder", "unit_rows"]
