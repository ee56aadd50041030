"""Dense retrieval: queries embedded with the model the index was built with, exact or FAISS search."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openbook.embed import Embedder, EmbedderSettings, load_embedder
from openbook.errors import OpenbookError
from openbook.index.dense import DENSE_DIR, DenseInfo, open_vector_search
from openbook.index.store import PassageStore
from openbook.records import Hit
from openbook.retrieve.base import hits_from_rows
from openbook.retrieve.sparse import check_index_folder


class DenseRetriever:
    name = "dense"

    def __init__(
        self,
        directory: str | Path,
        engine: str = "matmul",
        embedder: Embedder | None = None,
        store: PassageStore | None = None,
    ):
        directory = Path(directory)
        check_index_folder(directory)
        self.info = DenseInfo.load(directory / DENSE_DIR)
        if embedder is not None and embedder.name != self.info.model:
            raise OpenbookError(
                f"{directory} was embedded with {self.info.model}, not {embedder.name}: queries must use the same model"
            )
        self.embedder = embedder or load_embedder(
            EmbedderSettings(
                self.info.model, query_prefix=self.info.query_prefix, passage_prefix=self.info.passage_prefix
            )
        )
        self.vectors = open_vector_search(directory, engine)
        self.store = store or PassageStore(directory)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        result = self.vectors.search(self.embedder.encode(list(queries), "query"), k)
        return hits_from_rows(self.store, result.rows, result.scores, self.name)
