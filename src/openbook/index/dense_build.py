"""Building the dense store: every passage of an index embedded into fp16 shards, resumable.

Rows are appended in passage order and flushed after every batch, so the bytes on disk say how far a
run got: a run stopped half way (crash, Ctrl-C, power) continues at row `bytes // (2 * dimension)`,
after cutting a half-written row. Nothing else records progress, so the two can never disagree. The
layout and the search are in `openbook.index.dense`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from openbook.config import check_at_least
from openbook.embed import EmbedderSettings, load_embedder
from openbook.errors import OpenbookError
from openbook.index.dense import (
    DENSE_DIR,
    INFO_FILE,
    ROW_DTYPE,
    DenseInfo,
    ShardedMatmulSearch,
    check_shards,
    shard_paths,
)
from openbook.index.store import PassageStore
from openbook.models import MODELS
from openbook.progress import console, meter
from openbook.provenance import library_versions
from openbook.records import Passage


class DenseWriter:
    """Appends unit vectors in passage order into fp16 shards; reopening continues after the last
    whole row on disk."""

    def __init__(self, folder: Path, info: DenseInfo):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.info = folder, info
        self.row_bytes = ROW_DTYPE.itemsize * info.dimension
        self.rows = self._recover()

    def _recover(self) -> int:
        shards = [(path, path.stat().st_size // self.row_bytes) for path in shard_paths(self.folder)]
        check_shards(self.folder, replace(self.info, complete=False), shards, 0)
        for path, whole in shards:
            if path.stat().st_size != whole * self.row_bytes:
                with path.open("r+b") as handle:  # a row cut by the stop: drop it
                    handle.truncate(whole * self.row_bytes)
        return sum(whole for _, whole in shards)

    def add(self, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self.info.dimension:
            raise ValueError(f"vectors of shape {vectors.shape}, expected (n, {self.info.dimension})")
        data = np.ascontiguousarray(vectors, dtype=ROW_DTYPE)
        start = 0
        while start < len(data):
            shard, offset = divmod(self.rows, self.info.shard_rows)
            take = min(self.info.shard_rows - offset, len(data) - start)
            with (self.folder / f"shard-{shard:05d}.f16").open("ab") as sink:
                sink.write(data[start : start + take].tobytes())
                sink.flush()
                os.fsync(sink.fileno())  # so a power cut leaves rows or nothing, never a zero-filled tail
            self.rows += take
            start += take


def check_shard_rows(shard_rows: int | None) -> None:
    check_at_least("--shard-rows", shard_rows, unit="vectors")


def build_dense_index(
    index_dir: Path,
    settings: EmbedderSettings,
    shard_rows: int = 65536,
    batch_passages: int = 1024,
    show_progress: bool = True,
) -> DenseInfo:
    """Embed every passage of the index's store (title kept) into `<index>/dense`; resumes a stopped
    run. A dense part built otherwise (model, prefixes, shard size) is refused, never mixed."""
    check_shard_rows(shard_rows)
    folder = index_dir / DENSE_DIR
    store = PassageStore(index_dir)
    # a path is recorded absolute, so the index works from any folder; names and hub ids as given
    model = (
        settings.model
        if settings.model in MODELS or not Path(settings.model).exists()
        else str(Path(settings.model).resolve())
    )
    found = DenseInfo.load(folder) if (folder / INFO_FILE).is_file() else None
    if found is not None:  # before loading the embedder, which takes a while
        _check_same_build(folder, found, model, shard_rows, len(store))
    embedder = load_embedder(settings)
    info = DenseInfo(
        model=model,
        dimension=embedder.dimension,
        query_prefix=embedder.query_prefix,
        passage_prefix=embedder.passage_prefix,
        shard_rows=shard_rows,
        passages=len(store),
        versions=library_versions(("torch", "sentence-transformers", "llama-cpp-python")),
    )
    folder.mkdir(parents=True, exist_ok=True)
    if found is not None:
        for key in ("dimension", "query_prefix", "passage_prefix"):
            if getattr(found, key) != getattr(info, key):
                raise OpenbookError(
                    f"{folder} holds a dense index with {key} = {getattr(found, key)!r}, not "
                    f"{getattr(info, key)!r}; delete {folder} to rebuild it"
                )
        info.seconds = found.seconds
    info.save(folder)
    writer = DenseWriter(folder, info)
    if show_progress and 0 < writer.rows < len(store):
        console.print(f"resuming the dense index at passage {writer.rows:,} of {len(store):,}")
    started, seconds_before = time.perf_counter(), info.seconds
    with meter(f"embedding ({settings.model})", len(store), ("passages",), enabled=show_progress) as m:
        m.advance(completed=writer.rows)
        for passages in _batched(store.iter_batches(writer.rows), batch_passages):
            writer.add(embedder.encode([p.indexed_text() for p in passages], "passage"))
            m.advance(completed=writer.rows, passages=len(passages))
            info.seconds = round(seconds_before + time.perf_counter() - started, 2)
            info.save(folder)  # so a stopped run's time still counts
    info.complete = writer.rows == len(store)
    if info.complete:
        info.max_row_norm = ShardedMatmulSearch(folder).largest_row_norm()
    info.save(folder)
    return info


def _check_same_build(folder: Path, found: DenseInfo, model: str, shard_rows: int, passages: int) -> None:
    for key, wanted in (("model", model), ("shard_rows", shard_rows), ("passages", passages)):
        if getattr(found, key) != wanted:
            raise OpenbookError(
                f"{folder} holds a dense index with {key} = {getattr(found, key)!r}, not "
                f"{wanted!r}; delete {folder} to rebuild it"
            )


def _batched(batches: Iterator[list[Passage]], size: int) -> Iterator[list[Passage]]:
    pending: list[Passage] = []
    for batch in batches:
        pending.extend(batch)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending
