"""sentence-transformers embedders (all-MiniLM-L6-v2, all-mpnet-base-v2, any ST folder or hub id)."""

from __future__ import annotations

import numpy as np

from openbook.embed.base import PrefixedEmbedder
from openbook.errors import OpenbookError


class SentenceTransformerEmbedder(PrefixedEmbedder):
    def __init__(
        self,
        name: str,
        location: str,
        query_prefix: str,
        passage_prefix: str,
        batch_size: int = 64,
        max_tokens: int | None = None,
        threads: int | None = None,
        device: str | None = None,
    ):
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # openbook shows its own progress
        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.model = SentenceTransformer(
            location, device=device or ("cuda" if torch.cuda.is_available() else "cpu"), local_files_only=True
        )
        if max_tokens:
            self.model.max_seq_length = max_tokens
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        found = dimension()  # the first name is sentence-transformers 6's
        if found is None:
            raise OpenbookError(f"{location}: the embedder does not say its dimension")
        self.dimension = int(found)
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.batch_size = batch_size

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
