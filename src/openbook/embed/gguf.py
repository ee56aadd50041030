"""GGUF embedders through llama.cpp (nomic-embed-text-v1.5): the pooling the GGUF declares, unit vectors."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from openbook.embed.base import TextKind, unit_rows, with_prefix


class GGUFEmbedder:
    def __init__(self, name: str, location: str, query_prefix: str, passage_prefix: str, batch_size: int = 64,
                 max_tokens: int | None = None, threads: int | None = None, n_gpu_layers: int = 0):
        from llama_cpp import Llama

        n_ctx = max_tokens or 512  # passages of ≤1024 characters are well under 512 tokens
        self.name = name
        # each text is its own sequence, pooled apart; texts are packed into decode calls of n_ctx tokens
        # (not more: attention in a call is quadratic in its size)
        self.model = Llama(model_path=location, embedding=True, n_ctx=n_ctx, n_batch=n_ctx,
                           n_ubatch=n_ctx, n_seq_max=8, n_threads=threads or os.cpu_count(),
                           n_gpu_layers=n_gpu_layers, verbose=False)
        self.max_tokens = n_ctx
        self.dimension = int(self.model.n_embd())
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefixed = with_prefix(texts, kind, self.query_prefix, self.passage_prefix)
        vectors = [self.model.embed(prefixed[start:start + 8], normalize=False, truncate=True)
                   for start in range(0, len(prefixed), 8)]
        return unit_rows(np.concatenate([np.asarray(v, dtype=np.float32) for v in vectors]))
