"""`openbook index … --ray [ADDRESS]`: the stages of a build spread over a Ray cluster, resumable
work unit by work unit, writing the index a single process writes.

The build is the one of `index/build.py` (the lock, the folder beside the target, the manifest, the
replacement when complete); only its three stages run on the cluster, and the folder being built must
be one every node reads and writes (a shared file system; on one machine, any folder):

- **passages**: one Ray task per input file reads its documents in units of `unit_documents`, chunks
  them and writes each unit as an Arrow file (`units/`, temp + rename), skipping the units already
  there. The driver then writes the passage store from the units in input order, dropping a document
  whose id came before as the single-process build does: the same passages in the same batches, the
  same bytes.
- **BM25** (bm25s): the store is cut into shards of `bm25_shard_rows` consecutive passages. Tasks
  count each shard's statistics, the driver sums them (`CorpusStats`), and tasks build each shard
  weighted by the whole corpus's, so every passage scores what it scores unsharded. Each shard is
  renamed into place when whole. tantivy builds its one index on disk on the driver (it streams).
- **dense**: Ray Data hands the dense shards (`shard_rows` passages each) to a pool of embedding
  actors (a GPU each where the cluster has GPUs, else a CPU); each shard is embedded in the batches
  the single-process build uses and renamed into place when whole.

A stopped build (the driver or a worker killed) resumes at the first unit, BM25 shard or dense shard
not on disk when the same command runs again.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from openbook.corpus import ChunkSettings, DropTally, FieldMap, chunk_document
from openbook.corpus.formats import DocumentReader
from openbook.embed import load_embedder
from openbook.errors import ConfigError, OpenbookError
from openbook.files import write_atomically
from openbook.index.bm25 import BM25_DIR, BM25S_PARAMS, CorpusStats, new_builder, save_params, shard_folder
from openbook.index.dense import INFO_FILE, ROW_DTYPE, DenseInfo, ShardedMatmulSearch
from openbook.index.dense_build import DenseSettings, begin_dense_info, begun_as_asked, record_dense
from openbook.index.parts import DENSE_DIR, fsync_path, sync_files
from openbook.index.staging import BuildState
from openbook.index.store import SCHEMA, PassageStore, PassageWriter, record_batch
from openbook.progress import meter
from openbook.raycluster import Worker, WorkLog
from openbook.records import Passage

UNITS_DIR = "units"  # the passage stage's work units, removed once the store is written
STATS_FILE = "bm25-corpus-stats.json"  # the summed BM25 statistics, kept while the shards are built


@dataclass(frozen=True)
class ClusterSettings:
    address: str = "local"  # "local": a cluster started on this machine for the build; else a running one's
    unit_documents: int = 10_000  # documents per work unit of the passage stage
    bm25_shard_rows: int = 1_000_000  # passages per BM25 shard
    embed_workers: int | None = None  # embedding actors; None: one per GPU of the cluster, else per CPU

    def __post_init__(self) -> None:
        for name in ("unit_documents", "bm25_shard_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.embed_workers is not None and self.embed_workers < 1:
            raise ConfigError(f"--embed-workers must be at least 1, not {self.embed_workers}")


def gather(ray: Any, refs: list[Any], description: str, unit: str, show_progress: bool) -> Iterator[Any]:
    """The results of `refs` as they finish, with a bar over them. A task that failed on openbook's
    account (an input that cannot be read) raises that error, not Ray's wrapping of it."""
    with meter(description, len(refs), (unit,), enabled=show_progress) as m:
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    if isinstance(error.cause, OpenbookError):
                        raise error.cause from None
                    raise
                yield result
                m.advance(completed=len(refs) - len(pending), **{unit: 1})


# --- passages ---------------------------------------------------------------------------------------


def unit_path(units: Path, number: int, unit: int) -> Path:
    return units / f"input-{number:05d}-unit-{unit:06d}.arrow"


def _write_unit(path: Path, passages: list[Passage], documents: list[tuple[str, int]], tally: DropTally, last: bool):
    """One work unit: its passages, and in its schema's metadata its documents in order (id, passage
    count; 0: no sentence), the records its reader dropped, and whether it ends its file."""
    meta = {"documents": documents, "dropped": tally.as_dict(), "last": last}
    schema = SCHEMA.with_metadata({b"openbook.unit": json.dumps(meta).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(record_batch(passages, schema))
    write_atomically(path, sink.getvalue().to_pybytes(), durable=True)


def _unit_meta(reader: pa.ipc.RecordBatchFileReader) -> dict[str, Any]:
    return json.loads((reader.schema.metadata or {})[b"openbook.unit"])


def read_unit(path: Path) -> tuple[list[Passage], list[tuple[str, int]], DropTally]:
    """A unit's passages, its documents in order (id, passage count) and the records its reader dropped."""
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    meta = _unit_meta(reader)
    passages = [Passage(**row) for row in reader.read_all().to_pylist()]
    documents = [(str(doc_id), int(count)) for doc_id, count in meta["documents"]]
    return passages, documents, DropTally.from_dict(meta["dropped"])


def units_done(units: Path, number: int) -> tuple[int, bool]:
    """How many units of input `number` are on disk (written in order, so the first ones), and
    whether the last of them ends the file (read from the units' schemas alone)."""
    done, last = 0, False
    while unit_path(units, number, done).is_file():
        last = bool(_unit_meta(pa.ipc.open_file(pa.memory_map(str(unit_path(units, number, done)))))["last"])
        done += 1
    return done, last


def chunk_input(
    path: str,
    fmt: str,
    fields: FieldMap,
    label: str,
    chunk: ChunkSettings,
    number: int,
    units: str,
    unit_documents: int,
) -> tuple[Worker, int]:
    """One input file's work units not yet on disk (a Ray task): its documents read from the first
    such unit on (the units before are skipped, not chunked), `unit_documents` to a unit."""
    folder = Path(units)
    done, last = units_done(folder, number)
    written = 0
    if not last:
        reader = DocumentReader(path, fmt, fields, DropTally(), label)
        documents = reader.documents_after(done * unit_documents)
        unit = done
        while True:
            reader.tally = tally = DropTally()
            passages: list[Passage] = []
            listed: list[tuple[str, int]] = []
            for document in documents:
                chunked = chunk_document(document, chunk)
                passages.extend(chunked)
                listed.append((document.id, len(chunked)))
                if len(listed) == unit_documents:
                    break
            ended = len(listed) < unit_documents
            _write_unit(unit_path(folder, number, unit), passages, listed, tally, ended)
            unit, written = unit + 1, written + 1
            if ended:
                break
    return Worker.here(), written


def passage_stage(
    ray: Any,
    building: Path,
    state: BuildState,
    readers: list[DocumentReader],
    chunk: ChunkSettings,
    batch_rows: int,
    settings: ClusterSettings,
    log: WorkLog,
    show_progress: bool,
) -> None:
    """The passage store of the build in `building`, from work units chunked on the cluster."""
    manifest = state.manifest
    units = building / UNITS_DIR
    units.mkdir(exist_ok=True)
    started = time.perf_counter()
    task = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(chunk_input)
    refs = [
        task.remote(str(r.path), r.format, r.fields, r.label, chunk, number, str(units), settings.unit_documents)
        for number, r in enumerate(readers)
    ]
    for worker, written in gather(ray, refs, "chunking (one task per input)", "inputs", show_progress):
        if written:
            log.count("passages (units chunked)", worker, written)
    writer = PassageWriter(building, batch_rows, manifest.build)
    seen: set[str] = set()
    tally = DropTally()
    for number, (reader, record) in enumerate(zip(readers, manifest.inputs)):
        record.documents = record.passages = 0
        for unit in range(units_done(units, number)[0]):
            passages, documents, dropped = read_unit(unit_path(units, number, unit))
            tally.merge(dropped)
            at = 0
            for doc_id, count in documents:
                kept = passages[at : at + count]
                at += count
                if doc_id in seen:  # as `build._new_passages` decides, in the same order
                    tally.drop("duplicate document id", f"{reader.path} (id {doc_id!r})")
                elif not kept:
                    tally.drop("text without a sentence", f"{reader.path} (id {doc_id!r})")
                else:
                    seen.add(doc_id)
                    record.documents += 1
                    record.passages += len(kept)
                    writer.add(kept)
    written = writer.close()
    if written == 0:
        raise OpenbookError(f"no passages came out of the inputs ({tally.summary()})")
    manifest.documents, manifest.passages, manifest.dropped = len(seen), written, tally.as_dict()
    manifest.seconds["read_and_chunk"] = round(time.perf_counter() - started, 2)
    state.passages = replace(state.passages, done=True, dropped=manifest.dropped)
    state.save(building)
    shutil.rmtree(units)


# --- BM25 -------------------------------------------------------------------------------------------


def shard_rows(total: int, rows_per_shard: int) -> list[tuple[int, int]]:
    """(first, end) of each shard of consecutive rows."""
    return [(first, min(first + rows_per_shard, total)) for first in range(0, total, rows_per_shard)]


def passage_texts(store: PassageStore, first: int, end: int) -> Iterator[str]:
    """The indexed text of rows first..end-1 of `store`."""
    row = first
    for batch in store.iter_batches(first):
        for passage in batch:
            if row == end:
                return
            yield passage.indexed_text()
            row += 1


def count_shard(folder: str, first: int, end: int) -> tuple[Worker, CorpusStats]:
    stats = CorpusStats.of_texts(passage_texts(PassageStore(Path(folder)), first, end))
    return Worker.here(), stats


def build_shard(folder: str, number: int, first: int, end: int, corpus: CorpusStats) -> Worker:
    """One BM25 shard, weighted by the whole corpus, built beside its place and renamed into it."""
    partial = Path(folder) / f"{BM25_DIR}.partial"
    target = partial / shard_folder(number)
    building = partial / f"{shard_folder(number)}.partial"
    shutil.rmtree(building, ignore_errors=True)
    builder = new_builder("bm25s", building, corpus=corpus)
    builder.add(list(passage_texts(PassageStore(Path(folder)), first, end)))
    builder.finish()
    sync_files(building)
    building.rename(target)
    return Worker.here()


def bm25_stage(
    ray: Any, building: Path, state: BuildState, settings: ClusterSettings, log: WorkLog, show_progress: bool
) -> None:
    """The BM25 part of the build in `building`, in shards built on the cluster; the shards already
    whole (a resumed build) are kept."""
    started = time.perf_counter()
    total = len(PassageStore(building))
    shards = shard_rows(total, settings.bm25_shard_rows)
    partial = building / f"{BM25_DIR}.partial"
    stats_path = building / STATS_FILE
    if not stats_path.is_file():  # no shard built yet: what is there is another attempt's (one process's)
        shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(exist_ok=True)
    if stats_path.is_file():
        corpus = CorpusStats(**json.loads(stats_path.read_text()))
    else:
        counter = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(count_shard)
        refs = [counter.remote(str(building), first, end) for first, end in shards]
        parts = []
        for worker, part in gather(ray, refs, "BM25 statistics (one task per shard)", "shards", show_progress):
            log.count("bm25 (shards counted)", worker)
            parts.append(part)
        corpus = CorpusStats.merged(parts)
        write_atomically(stats_path, json.dumps(asdict(corpus)), durable=True)
    builder = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(build_shard)  # each holds a shard's postings
    corpus_ref = ray.put(corpus)
    todo = [n for n in range(len(shards)) if not (partial / shard_folder(n)).is_dir()]
    refs = [builder.remote(str(building), n, *shards[n], corpus_ref) for n in todo]
    for worker in gather(ray, refs, "BM25 shards", "shards", show_progress):
        log.count("bm25 (shards built)", worker)
    params = {
        **BM25S_PARAMS,
        "shards": [end - first for first, end in shards],
        "corpus_tokens": corpus.tokens,
        "build": state.manifest.build,
    }
    save_params(partial, params)
    sync_files(partial)
    partial.rename(building / BM25_DIR)
    stats_path.unlink()
    state.manifest.indexes["bm25"] = params
    state.manifest.seconds["bm25"] = round(time.perf_counter() - started, 2)
    state.bm25_done = True
    state.save(building)


# --- dense ------------------------------------------------------------------------------------------


class ShardEmbedder:
    """A Ray Data actor: the embedder loaded once, then whole dense shards embedded, each written
    beside its place and renamed into it."""

    def __init__(self, folder: str, dense: DenseSettings):
        self.folder = Path(folder)
        self.store = PassageStore(self.folder)  # whole by now: opened once per actor
        self.dense = dense
        self.embedder = load_embedder(dense.embedder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        workers, seconds = [], []
        for number in batch["shard"].tolist():
            started = time.perf_counter()
            first = number * self.dense.shard_rows
            end = min(first + self.dense.shard_rows, len(self.store))
            target = self.folder / DENSE_DIR / f"shard-{number:05d}.f16"
            partial = target.with_name(target.name + ".partial")
            with partial.open("wb") as sink:
                texts = list(passage_texts(self.store, first, end))
                for start in range(0, len(texts), self.dense.batch_passages):
                    vectors = self.embedder.encode(texts[start : start + self.dense.batch_passages], "passage")
                    sink.write(np.ascontiguousarray(vectors, dtype=ROW_DTYPE).tobytes())
            fsync_path(partial)
            partial.rename(target)
            workers.append(Worker.here())
            seconds.append(time.perf_counter() - started)
        return {
            "shard": batch["shard"].tolist(),
            "node": [w.node for w in workers],
            "peak_rss_mib": [w.peak_rss_mib for w in workers],
            "seconds": seconds,
        }


def check_dense(dense: DenseSettings) -> None:
    """Dense settings a cluster can embed as one process does: each shard on its own, in whole batches
    (checked before any work)."""
    if dense.shard_rows % dense.batch_passages:
        raise ConfigError(
            f"--shard-rows {dense.shard_rows} is not a multiple of {dense.batch_passages} passages per batch: "
            "on a cluster each shard is embedded on its own, in whole batches"
        )


def embed_workers(ray: Any, settings: ClusterSettings) -> tuple[int, float]:
    """(actors, GPUs per actor): one per GPU where the cluster has GPUs, else one per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    workers = settings.embed_workers or gpus or max(int(resources.get("CPU", 1)), 1)
    return workers, (1.0 if gpus else 0.0)


def dense_stage(
    ray: Any,
    building: Path,
    state: BuildState,
    dense: DenseSettings,
    settings: ClusterSettings,
    log: WorkLog,
    show_progress: bool,
    overwrite: bool,
) -> None:
    """The dense part of the build in `building`, its shards embedded by a pool of actors; the shards
    already whole of a stopped build of the same dense settings are kept (of others: refused, or with
    `overwrite` discarded)."""
    folder = building / DENSE_DIR
    total = len(PassageStore(building))
    found = DenseInfo.load(folder) if (folder / INFO_FILE).is_file() else None
    if found is not None:  # a stopped build's shards, kept only where they were begun as asked now
        found = begun_as_asked(folder, found, dense, total, overwrite)
    embedder = load_embedder(dense.embedder)  # its dimension and prefixes, for dense.json
    info = begin_dense_info(folder, found, dense, embedder, total, state.manifest.build)
    row_bytes = ROW_DTYPE.itemsize * info.dimension
    shards = shard_rows(total, dense.shard_rows)
    todo = [
        n
        for n, (first, end) in enumerate(shards)
        if not (folder / f"shard-{n:05d}.f16").is_file()
        or (folder / f"shard-{n:05d}.f16").stat().st_size != (end - first) * row_bytes
    ]
    if todo:
        import ray.data

        workers, gpus = embed_workers(ray, settings)
        workers = min(workers, len(todo))
        ray.data.DataContext.get_current().enable_progress_bars = False  # openbook's bar says it
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        dataset = ray.data.from_items([{"shard": n} for n in todo], override_num_blocks=len(todo)).map_batches(
            ShardEmbedder,
            fn_constructor_kwargs={"folder": str(building), "dense": dense},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=0 if gpus else 1,
            num_gpus=gpus,
        )
        with meter(
            f"embedding ({dense.embedder.model}) on {workers} actors", len(todo), ("shards",), show_progress
        ) as m:
            for done, row in enumerate(dataset.iter_rows(), start=1):
                log.count("dense (shards embedded)", Worker(row["node"], row["peak_rss_mib"]))
                info.seconds = round(info.seconds + row["seconds"], 2)
                m.advance(completed=done, shards=1)
    info.complete = True
    info.max_row_norm = ShardedMatmulSearch(folder).largest_row_norm()
    info.save(folder)
    record_dense(state, info)
