"""FAISS behind the same `VectorSearch` interface: exact flat inner product, and HNSW (approximate,
for stores whose queries must be fast one at a time). Built from the dense store's fp16 blocks,
widened to fp32, and saved beside its shards (`faiss-flat.index`, `faiss-hnsw.index`) so it is built
once, with a record beside it (`faiss-flat.index.json`: the index's build id, size and checksum), so a
FAISS file of another index or cut short is built again rather than read (`openbook verify-index`
checks the checksum). The store is opened by `index/dense.py` (`open_vector_search`), which hands
this module its dimension, size and blocks; this module imports nothing of it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from openbook.errors import OpenbookError
from openbook.index.engines import FAISS_ENGINES, SearchResult, VectorSearch, check_engine
from openbook.index.manifest import save_json
from openbook.index.parts import checksum

Blocks = Callable[[], Iterable[np.ndarray]]  # the store's rows in order, block by block (fp16 or fp32)


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise OpenbookError(
            "FAISS is not installed: pip install 'openbook[faiss]' (or use the matmul engine)"
        ) from None
    return faiss


def record_path(index_path: Path) -> Path:
    """The record beside a FAISS file: the build id of its vectors, its size and checksum."""
    return index_path.with_name(index_path.name + ".json")


def recorded(index_path: Path, build: str) -> bool:
    """Whether the FAISS file is the one written for the vectors of `build`, whole (as big as written).
    A file without a record is trusted only in an index built before build ids were (build "")."""
    if not index_path.is_file():
        return False
    if not record_path(index_path).is_file():
        return not build
    try:
        record = json.loads(record_path(index_path).read_text())
    except json.JSONDecodeError:
        return False
    return record.get("build") == build and record.get("bytes") == index_path.stat().st_size


def build_faiss_index(
    folder: Path,
    engine: str,
    dimension: int,
    blocks: Iterable[np.ndarray],
    hnsw_m: int = 32,
    ef_construction: int = 80,
    build: str = "",
) -> Any:
    """The FAISS index of `engine` over the blocks' rows, written to `<folder>/<engine>.index` with
    its record (`build`: the build id of the index whose vectors these are)."""
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
    path = folder / f"{engine}.index"
    record = {"build": build, "bytes": partial.stat().st_size, "sha256": checksum(partial), "vectors": index.ntotal}
    partial.replace(path)  # a stop while writing leaves no half file to read later
    save_json(record_path(path), record)  # last: a file without its record is built again
    return index


class FaissSearch(VectorSearch):
    """A FAISS index of a dense store of `count` vectors of `dimension`, read from `<folder>/<engine>.index`,
    or built from `blocks()` the first time (or again, where the file is not the one recorded for `build`)."""

    def __init__(
        self,
        folder: Path,
        engine: str,
        dimension: int,
        count: int,
        blocks: Blocks,
        ef_search: int = 128,
        build: str = "",
    ):
        faiss = _import_faiss()
        self.name = engine
        path = folder / f"{engine}.index"
        self.index = (
            faiss.read_index(str(path))
            if recorded(path, build)
            else build_faiss_index(folder, engine, dimension, blocks(), build=build)
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
