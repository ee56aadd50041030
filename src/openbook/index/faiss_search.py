"""FAISS behind the same `VectorSearch` interface: exact flat inner product, and HNSW (approximate,
for stores whose queries must be fast one at a time). Built from the fp16 shards, widened to fp32,
and saved beside them (`faiss-flat.index`, `faiss-hnsw.index`) so it is built once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openbook.errors import OpenbookError
from openbook.index.dense import DenseInfo, SearchResult, ShardedMatmulSearch, VectorSearch

FAISS_ENGINES = ("faiss-flat", "faiss-hnsw")


def _import_faiss():
    try:
        import faiss
    except ImportError:
        raise OpenbookError(
            "FAISS is not installed: pip install 'openbook[faiss]' (or use the matmul engine)"
        ) from None
    return faiss


def build_faiss_index(folder: Path, engine: str, hnsw_m: int = 32, ef_construction: int = 80):
    faiss = _import_faiss()
    info = DenseInfo.load(folder)
    if engine == "faiss-flat":
        index = faiss.IndexFlatIP(info.dimension)
    elif engine == "faiss-hnsw":
        index = faiss.IndexHNSWFlat(info.dimension, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
    else:
        raise OpenbookError(f"unknown dense engine {engine!r}; choose from matmul, {', '.join(FAISS_ENGINES)}")
    for _, block in ShardedMatmulSearch(folder, block_rows=65536).blocks():
        index.add(np.asarray(block, dtype=np.float32))
    partial = folder / f"{engine}.index.partial"
    try:
        faiss.write_index(index, str(partial))
    except RuntimeError as error:  # FAISS's own I/O errors are not OSError
        raise OpenbookError(f"cannot write the {engine} index into {folder}: {error}") from None
    partial.replace(folder / f"{engine}.index")  # a stop while writing leaves no half file to read later
    return index


class FaissSearch(VectorSearch):
    def __init__(self, folder: Path, engine: str, ef_search: int = 128):
        faiss = _import_faiss()
        self.name = engine
        path = folder / f"{engine}.index"
        self.index = faiss.read_index(str(path)) if path.is_file() else build_faiss_index(folder, engine)
        expected = DenseInfo.load(folder).passages
        if self.index.ntotal != expected:
            raise OpenbookError(
                f"{path} holds {self.index.ntotal:,} vectors, the dense index {expected:,}; delete it to rebuild it"
            )
        if engine == "faiss-hnsw":
            self.index.hnsw.efSearch = ef_search
        self.count = int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        scores, rows = self.index.search(np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32), k)
        return SearchResult(rows.astype(np.int64), scores.astype(np.float32))
