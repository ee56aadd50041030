"""GGUF embedders through llama.cpp (nomic-embed-text-v1.5): the pooling the GGUF declares, unit vectors."""

from __future__ import annotations

import os

import numpy as np

from openbook.embed.base import PrefixedEmbedder
from openbook.errors import OpenbookError


class GGUFEmbedder(PrefixedEmbedder):
    def __init__(
        self,
        name: str,
        location: str,
        query_prefix: str,
        passage_prefix: str,
        batch_size: int = 64,
        max_tokens: int | None = None,
        threads: int | None = None,
        n_gpu_layers: int = 0,
    ):
        from llama_cpp import Llama

        n_ctx = max_tokens or 512  # passages of ≤1024 characters are well under 512 tokens
        self.name = name
        # each text is its own sequence, pooled apart; `batch_size` texts per call, packed by llama.cpp
        # into decodes of n_ctx tokens (not more: attention in a decode is quadratic in its size)
        self.batch_size = batch_size
        self.model = Llama(
            model_path=location,
            embedding=True,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_seq_max=batch_size,
            n_threads=threads or os.cpu_count(),
            n_gpu_layers=n_gpu_layers,
            verbose=False,
        )
        if self.model.pooling_type() == 0:  # LLAMA_POOLING_TYPE_NONE: one vector per token, not per text
            raise OpenbookError(
                f"{name} declares no pooling: it is not an embedding model (a language model's "
                "GGUF?); use a registered embedder or a GGUF made for embeddings"
            )
        self.max_tokens = n_ctx
        self.dimension = int(self.model.n_embd())
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = [
            self.model.embed(texts[start : start + self.batch_size], normalize=False, truncate=True)
            for start in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate([np.asarray(v, dtype=np.float32) for v in vectors])
