"""FAISS behind the same `VectorSearch` interface: exact flat inner product, and HNSW (approximate,
for stores whose queries must be fast one at a time). Built from the dense store's fp16 blocks,
widened to fp32, and saved beside its shards (`faiss-flat.index`, `faiss-hnsw.index`) so it is built
once. The store is opened by `index/dense.py` (`open_vector_search`), which hands this module its
dimension, size and blocks; this module imports nothing of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from openbook.errors import OpenbookError
from openbook.index.engines import FAISS_ENGINES, SearchResult, VectorSearch, check_engine

Blocks = Callable[[], Iterable[np.ndarray]]  # the store's rows in order, block by block (fp16 or fp32)


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise OpenbookError(
            "FAISS is not installed: pip install 'openbook[faiss]' (or use the matmul engine)"
        ) from None
    return faiss


def build_faiss_index(
    folder: Path, engine: str, dimension: int, blocks: Iterable[np.ndarray], hnsw_m: int = 32, ef_construction: int = 80
) -> Any:
    """The FAISS index of `engine` over the blocks' rows, written to `<folder>/<engine>.index`."""
    check_engine(engine)
    if engine not in FAISS_ENGINES:
        raise ValueError(f"{engine} is not a FAISS engine")  # a caller's bug: open_vector_search sends the others
    faiss = _import_faiss()
    if engine == "faiss-flat":
        index = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.IndexHNSWFlat(dimension, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
    for block in blocks:
        index.add(np.asarray(block, dtype=np.float32))
    partial = folder / f"{engine}.index.partial"
    try:
        faiss.write_index(index, str(partial))
    except RuntimeError as error:  # FAISS's own I/O errors are not OSError
        raise OpenbookError(f"cannot write the {engine} index into {folder}: {error}") from None
    partial.replace(folder / f"{engine}.index")  # a stop while writing leaves no half file to read later
    return index


class FaissSearch(VectorSearch):
    """A FAISS index of a dense store of `count` vectors of `dimension`, read from `<folder>/<engine>.index`,
    or built from `blocks()` the first time."""

    def __init__(self, folder: Path, engine: str, dimension: int, count: int, blocks: Blocks, ef_search: int = 128):
        faiss = _import_faiss()
        self.name = engine
        path = folder / f"{engine}.index"
        self.index = (
            faiss.read_index(str(path)) if path.is_file() else build_faiss_index(folder, engine, dimension, blocks())
        )
        if self.index.ntotal != count:
            raise OpenbookError(
                f"{path} holds {self.index.ntotal:,} vectors, the dense index {count:,}; delete it to rebuild it"
            )
        if engine == "faiss-hnsw":
            self.index.hnsw.efSearch = ef_search
        self.count = int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        scores, rows = self.index.search(np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32), k)
        return SearchResult(rows.astype(np.int64), scores.astype(np.float32))
