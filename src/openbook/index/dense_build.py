"""Building the dense store: every passage of an index embedded into fp16 shards, resumable.

Rows are appended in passage order and flushed after every batch, so the bytes on disk say how far a
run got: a run stopped half way (crash, Ctrl-C, power) continues at row `bytes // (2 * dimension)`,
after cutting a half-written row, and back to the start of its batch of passages, so every passage is
embedded among the same others as in a run that was never stopped (the same bytes). Nothing else
records progress, so the two can never disagree. The layout and the search are in `openbook.index.dense`.

The dense part is built where the rest of an index is (`index/staging.py`): in the folder beside the
target, which replaces the target when complete. `build_dense_index` adds one to an index already
built: its store and BM25 files are linked into that folder, not copied.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from openbook.config import check_at_least
from openbook.embed import Embedder, EmbedderSettings, load_embedder
from openbook.errors import OpenbookError
from openbook.index.dense import (
    INFO_FILE,
    ROW_DTYPE,
    DenseInfo,
    ShardedMatmulSearch,
    check_shards,
    shard_paths,
)
from openbook.index.lock import build_lock
from openbook.index.parts import DENSE_DIR
from openbook.index.staging import BuildState, Staging
from openbook.index.store import PassageStore
from openbook.index.verify import check_index
from openbook.models import MODELS
from openbook.progress import console, meter
from openbook.provenance import library_versions
from openbook.records import Passage


@dataclass(frozen=True)
class DenseSettings:
    embedder: EmbedderSettings
    shard_rows: int = 65536
    batch_passages: int = 1024  # passages embedded together (a stopped run resumes at such a batch's start)

    def model(self) -> str:
        """The model as the index records it: a path absolute (the index works from any folder), names
        and hub ids as given."""
        name = self.embedder.model
        return name if name in MODELS or not Path(name).exists() else str(Path(name).resolve())

    def differs_from(self, info: DenseInfo) -> tuple[str, object, object] | None:
        """The first setting a dense part was built otherwise with: (name, built, asked), or None.
        Prefixes are compared where asked for; the model's own are only known once it is loaded."""
        asked = {"model": self.model(), "shard_rows": self.shard_rows}
        if self.embedder.query_prefix is not None:
            asked["query_prefix"] = self.embedder.query_prefix
        if self.embedder.passage_prefix is not None:
            asked["passage_prefix"] = self.embedder.passage_prefix
        for key, value in asked.items():
            if getattr(info, key) != value:
                return key, getattr(info, key), value
        return None


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

    def truncate(self, rows: int) -> None:
        """Keep the first `rows` rows only."""
        for number, path in enumerate(shard_paths(self.folder)):
            keep = min(max(rows - number * self.info.shard_rows, 0), self.info.shard_rows)
            if keep == 0:
                path.unlink()
            elif path.stat().st_size > keep * self.row_bytes:
                with path.open("r+b") as handle:
                    handle.truncate(keep * self.row_bytes)
        self.rows = min(self.rows, rows)

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


def embed_passages(
    index_dir: Path, dense: DenseSettings, build: str = "", show_progress: bool = True, overwrite: bool = False
) -> DenseInfo:
    """Embed every passage of the store in `index_dir` (title kept) into `<index_dir>/dense`; resumes a
    stopped run. A dense part begun otherwise (model, prefixes, shard size) is refused, never mixed, or
    with `overwrite` started over."""
    check_shard_rows(dense.shard_rows)
    folder = index_dir / DENSE_DIR
    store = PassageStore(index_dir)
    found = DenseInfo.load(folder) if (folder / INFO_FILE).is_file() else None
    if found is not None:  # before loading the embedder, which takes a while
        found = begun_as_asked(folder, found, dense, len(store), overwrite)
    embedder = load_embedder(dense.embedder)
    info = begin_dense_info(folder, found, dense, embedder, len(store), build)
    writer = DenseWriter(folder, info)
    writer.truncate(writer.rows - writer.rows % dense.batch_passages)
    if 0 < writer.rows < len(store):
        console.print(f"resuming the dense index at passage {writer.rows:,} of {len(store):,}")
    started, seconds_before = time.perf_counter(), info.seconds
    with meter(f"embedding ({dense.embedder.model})", len(store), ("passages",), enabled=show_progress) as m:
        m.advance(completed=writer.rows)
        for passages in _batched(store.iter_batches(writer.rows), dense.batch_passages):
            writer.add(embedder.encode([p.indexed_text() for p in passages], "passage"))
            m.advance(completed=writer.rows, passages=len(passages))
            info.seconds = round(seconds_before + time.perf_counter() - started, 2)
            info.save(folder)  # so a stopped run's time still counts
    info.complete = writer.rows == len(store)
    if info.complete:
        info.max_row_norm = ShardedMatmulSearch(folder).largest_row_norm()
    info.save(folder)
    return info


def begin_dense_info(
    folder: Path, found: DenseInfo | None, dense: DenseSettings, embedder: Embedder, passages: int, build: str
) -> DenseInfo:
    """The description of the dense part to build in `folder`, saved: `found` (begun before, as
    asked: `begun_as_asked`) goes on, its seconds kept; one the loaded embedder contradicts is refused."""
    info = DenseInfo(
        model=dense.model(),
        dimension=embedder.dimension,
        query_prefix=embedder.query_prefix,
        passage_prefix=embedder.passage_prefix,
        shard_rows=dense.shard_rows,
        passages=passages,
        versions=library_versions(("torch", "sentence-transformers", "llama-cpp-python")),
        build=build,
    )
    folder.mkdir(parents=True, exist_ok=True)
    if found is not None:
        for key in ("dimension", "query_prefix", "passage_prefix"):
            if getattr(found, key) != getattr(info, key):
                raise OpenbookError(
                    f"{folder} holds a dense index with {key} = {getattr(found, key)!r}, not "
                    f"{getattr(info, key)!r}; pass --overwrite to start it over"
                )
        info.seconds = found.seconds
    info.save(folder)
    return info


def record_dense(state: BuildState, info: DenseInfo) -> None:
    """The dense part, complete, in the manifest to be."""
    state.manifest.indexes[DENSE_DIR] = {
        "model": info.model,
        "dimension": info.dimension,
        "vectors": info.passages,
        "dtype": "float16",
        "shard_rows": info.shard_rows,
    }
    state.manifest.seconds[DENSE_DIR] = info.seconds


def begun_as_asked(
    folder: Path, found: DenseInfo, dense: DenseSettings, passages: int, overwrite: bool
) -> DenseInfo | None:
    """The dense part begun in `folder` if it was begun as asked now; None (and it is gone) if not
    and `overwrite`; else an error naming the difference."""
    differs = dense.differs_from(found) or (
        ("passages", found.passages, passages) if found.passages != passages else None
    )
    if differs is None:
        return found
    if overwrite:
        shutil.rmtree(folder)
        return None
    key, built, asked = differs
    raise OpenbookError(
        f"{folder} holds an unfinished dense index with {key} = {built!r}, not {asked!r}; run the command "
        "that began it again to finish it, or pass --overwrite to start it over"
    )


def dense_stage(building: Path, state: BuildState, dense: DenseSettings, show_progress: bool, overwrite: bool) -> None:
    """The dense part of the build in `building`, recorded in its manifest to be."""
    record_dense(state, embed_passages(building, dense, state.manifest.build, show_progress, overwrite))


def dense_kept(index_dir: Path, dense: DenseSettings, overwrite: bool) -> bool:
    """Whether the complete index in `index_dir` already has the dense part asked for. One built
    otherwise is replaced only with `overwrite` (else an error naming the difference)."""
    folder = index_dir / DENSE_DIR
    if not (folder / INFO_FILE).is_file():
        return False
    info = DenseInfo.load(folder)
    differs = dense.differs_from(info)
    if differs is None:
        return info.complete
    key, built, asked = differs
    if info.complete and not overwrite:
        raise OpenbookError(
            f"{index_dir} holds a dense index with {key} = {built!r}, not {asked!r}; pass --overwrite to "
            "replace it (the index there serves until the new one is complete)"
        )
    return False


def build_dense_index(
    index_dir: Path,
    settings: EmbedderSettings,
    shard_rows: int = 65536,
    batch_passages: int = 1024,
    show_progress: bool = True,
    overwrite: bool = False,
) -> DenseInfo:
    """Add a dense part to the index built in `index_dir` (`openbook index … --dense MODEL` does this
    with its build): kept when it is there already, resumed when a run of it was stopped, and put in
    place with the index's manifest only when complete."""
    dense = DenseSettings(settings, shard_rows, batch_passages)
    check_shard_rows(shard_rows)
    index_dir = index_dir.resolve()
    with build_lock(index_dir):
        staging = Staging(index_dir)
        staging.tidy()
        manifest = check_index(index_dir, dense=False)
        state = staging.unfinished()
        if state is not None and not (state.manifest.build == manifest.build and state.bm25_done):
            raise OpenbookError(
                f"an unfinished build of other inputs is in {staging.building}; finish it with the "
                "`openbook index` command that began it, or delete that folder"
            )
        if state is None:
            if dense_kept(index_dir, dense, overwrite):
                return DenseInfo.load(index_dir / DENSE_DIR)
            state = staging.extend(manifest)
        dense_stage(staging.building, state, dense, show_progress, overwrite)
        staging.commit(state)
    return DenseInfo.load(index_dir / DENSE_DIR)


def _batched(batches: Iterator[list[Passage]], size: int) -> Iterator[list[Passage]]:
    pending: list[Passage] = []
    for batch in batches:
        pending.extend(batch)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending
