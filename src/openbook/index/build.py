"""`openbook index`: corpus files -> documents -> passages -> passage store + BM25 index (+ dense) + manifest.

A build holds the target's lock (`index/lock.py`: a second builder is refused, naming the first) and
works in a folder beside the target (`index/staging.py`), in stages: the passages (inputs read one
document at a time, chunked, written to the store in batches, with a checkpoint at every batch), BM25
(from the store), the dense part when asked for (`index/dense_build.py`), then the manifest with every
part's size and checksum; only then does the folder replace the target, so the old index serves until
the new one is whole. A stopped build (kill -9, a crash) resumes when the same command runs again:
the passages at the input file and document after the last checkpoint, BM25 from its start, the dense
part at its last whole batch; the index is the same, byte for byte, as one built without a stop.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from openbook.corpus import ChunkSettings, DropTally, FieldMap, chunk_document
from openbook.corpus.formats import DocumentReader
from openbook.errors import OpenbookError
from openbook.index import cluster as ray_stages
from openbook.index.bm25 import BM25_DIR, new_builder, save_params
from openbook.index.cluster import STATS_FILE, UNITS_DIR, ClusterSettings
from openbook.index.dense_build import DenseSettings, check_shard_rows, dense_kept, dense_stage
from openbook.index.lock import build_lock
from openbook.index.manifest import MANIFEST_FILE, InputRecord, Manifest, build_id
from openbook.index.parts import DamagedIndex, sync_files
from openbook.index.staging import BuildState, PassageCheckpoint, Staging, check_replaceable
from openbook.index.store import BATCH_ROWS, PassageStore, PassageWriter
from openbook.index.verify import check_index
from openbook.progress import console, meter
from openbook.provenance import library_versions, sha256_of
from openbook.raycluster import connect
from openbook.records import Document, Passage


@dataclass(frozen=True)
class IndexSettings:
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    bm25_engine: str = "bm25s"
    corpus_format: str | None = None  # None: detected per file
    fields: FieldMap = field(default_factory=FieldMap)
    store_batch_rows: int = BATCH_ROWS  # passages per store batch: a stopped build resumes after the last one


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for every non-hidden file below it (WikiExtractor writes AA/wiki_00…)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            raise OpenbookError(f"{path}: no such file or folder")
    if not files:
        raise OpenbookError("no corpus files to index")
    return files


def _labels(files: list[Path]) -> list[str]:
    """Each input's name for the ids of documents that carry none: its file name, or its path below
    the inputs' common folder where two inputs share a name (folders of part-0.jsonl files)."""
    names = [path.name for path in files]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([path.resolve().parent for path in files]))
    return [path.resolve().relative_to(common).as_posix() for path in files]


def _planned(readers: list[DocumentReader], settings: IndexSettings) -> Manifest:
    """The manifest of the index these inputs and settings make, before any passage: its build id."""
    records = [InputRecord(path=str(r.path), format=r.format, bytes=r.size, sha256=sha256_of(r.path)) for r in readers]
    chunking, fields = settings.chunk.as_dict(), asdict(settings.fields)
    return Manifest(
        created="",
        chunking=chunking,
        inputs=records,
        fields=fields,
        indexes={"bm25": {"engine": settings.bm25_engine}},
        versions=library_versions(("tantivy",) if settings.bm25_engine == "tantivy" else ()),
        build=build_id(records, chunking, fields, settings.bm25_engine),
    )


def build_index(
    inputs: list[Path],
    out: Path,
    settings: IndexSettings = IndexSettings(),
    show_progress: bool = True,
    overwrite: bool = False,
    dense: DenseSettings | None = None,
    cluster: ClusterSettings | None = None,
) -> Manifest:
    """The index of `inputs` in `out` (with a dense part with `dense`; on a Ray cluster with
    `cluster`, `index/cluster.py`: the same index). A whole index already there
    from the same inputs and settings is kept (a dense part added where asked for, or replaced with
    `overwrite`); one of other inputs or settings is replaced only with `overwrite`; a damaged one of
    the same is rebuilt; a stopped build of the same is resumed."""
    files = expand_inputs(inputs)
    # open (and so validate) every input before any work, so a bad last file costs nothing
    readers = [
        DocumentReader(path, settings.corpus_format, settings.fields, DropTally(), label)
        for path, label in zip(files, _labels(files))
    ]
    if dense is not None:
        check_shard_rows(dense.shard_rows)
        if cluster is not None:
            ray_stages.check_dense(dense)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(out):
        staging = Staging(out)
        staging.tidy()
        planned = _planned(readers, settings)
        state = _resumed(staging, planned, overwrite)
        if state is None:
            existing = _kept(out, planned, overwrite)
            if existing is not None and (dense is None or dense_kept(out, dense, overwrite)):
                console.print(f"{out} already holds this index, whole: kept")
                return existing
            check_replaceable(out)
            state = staging.start(planned) if existing is None else staging.extend(existing)
        else:
            check_replaceable(out)
        if cluster is None:
            return _complete(staging, state, readers, settings, dense, show_progress, overwrite)
        return _complete_on_cluster(staging, state, readers, settings, dense, cluster, show_progress, overwrite)


def _resumed(staging: Staging, planned: Manifest, overwrite: bool) -> BuildState | None:
    """The stopped build of the same inputs and settings, to go on with; one of others is refused,
    or with `overwrite` discarded."""
    state = staging.unfinished()
    if state is None:
        return None
    if state.manifest.build == planned.build:
        console.print(f"resuming the build stopped in {staging.building}: {_stage_of(state)}")
        return state
    if not overwrite:
        inputs = ", ".join(record.path for record in state.manifest.inputs)
        raise OpenbookError(
            f"{staging.building} holds a stopped build of other inputs or settings ({inputs}); run the command "
            "that began it again to finish it, or pass --overwrite to discard it"
        )
    staging.discard()
    return None


def _stage_of(state: BuildState) -> str:
    checkpoint = state.passages
    if not checkpoint.done:
        if not checkpoint.batches:
            return "passages, from the start"
        record = state.manifest.inputs[checkpoint.input]
        return f"passages, at {record.path} after its document {checkpoint.consumed:,} ({state.manifest.passages:,} passages kept)"
    return "BM25" if not state.bm25_done else "passages and BM25 done"


def _kept(out: Path, planned: Manifest, overwrite: bool) -> Manifest | None:
    """The manifest of the index in `out` if it is whole (the check every open makes) and of the same
    inputs and settings; None where there is nothing to keep. An index of others is refused without
    `overwrite`; a damaged one of the same is rebuilt."""
    if not out.is_dir() or not any(out.iterdir()):
        return None
    if not (out / MANIFEST_FILE).is_file():  # whose files these are cannot be told
        if not overwrite:
            raise _not_empty(out, "files that are not a whole index")
        return None
    try:
        existing: Manifest | None = check_index(out)
        damage = None
    except DamagedIndex as error:
        existing, damage = Manifest.load(out), error.problem
    except OpenbookError as error:  # a manifest that cannot be read: whose index it is cannot be told
        existing, damage = None, str(error)
    same = existing is not None and existing.identity() == planned.build
    if same and damage is None:  # built again it would be the same, byte for byte
        return existing
    if not same and not overwrite:
        raise _not_empty(out, "an index of other inputs or settings")
    if same and damage is not None:
        console.print(f"{out} is damaged ({damage}): rebuilding it (it stays until the new one is complete)")
    return None


def _not_empty(out: Path, holding: str) -> OpenbookError:
    return OpenbookError(
        f"{out} is not empty: it holds {holding}; choose another folder or pass --overwrite to replace it "
        "(what is there stays until the new index is complete)"
    )


def _complete(
    staging: Staging,
    state: BuildState,
    readers: list[DocumentReader],
    settings: IndexSettings,
    dense: DenseSettings | None,
    show_progress: bool,
    overwrite: bool,
) -> Manifest:
    """The stages `state` has not done, then the build in the target's place."""
    building = staging.building
    if not state.passages.done:
        try:
            _passage_stage(building, state, readers, settings, show_progress)
        except OpenbookError:  # an input that fails or gives nothing: the inputs must change, so nothing is left
            staging.discard()
            raise
    if not state.bm25_done:
        _bm25_stage(building, state, settings.bm25_engine, show_progress)
    if dense is not None:
        dense_stage(building, state, dense, show_progress, overwrite)
    return _committed(staging, state, show_progress)


def _complete_on_cluster(
    staging: Staging,
    state: BuildState,
    readers: list[DocumentReader],
    settings: IndexSettings,
    dense: DenseSettings | None,
    cluster: ClusterSettings,
    show_progress: bool,
    overwrite: bool,
) -> Manifest:
    """The stages `state` has not done, on the cluster (`index/cluster.py`); then as `_complete`."""
    building = staging.building
    ray, started = connect(cluster.address, "building")
    try:
        log = ray_stages.WorkLog(cluster.address, nodes=sum(node["Alive"] for node in ray.nodes()))
        if show_progress:
            resources = ray.cluster_resources()
            console.print(
                f"building on the Ray cluster at {cluster.address}: {log.nodes} node(s), "
                f"{int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs"
            )
        if not state.passages.done:
            try:
                ray_stages.passage_stage(
                    ray,
                    building,
                    state,
                    readers,
                    settings.chunk,
                    settings.store_batch_rows,
                    cluster,
                    log,
                    show_progress,
                )
            except OpenbookError:  # as in one process: the inputs must change, so nothing is kept
                staging.discard()
                raise
        if not state.bm25_done:
            if settings.bm25_engine == "bm25s":
                ray_stages.bm25_stage(ray, building, state, cluster, log, show_progress)
            else:  # tantivy streams its one index to disk: built here
                _bm25_stage(building, state, settings.bm25_engine, show_progress)
        if dense is not None:
            ray_stages.dense_stage(ray, building, state, dense, cluster, log, show_progress, overwrite)
        state.manifest.cluster = log.as_dict()
    finally:
        if started:
            ray.shutdown()
    return _committed(staging, state, show_progress)


def _committed(staging: Staging, state: BuildState, show_progress: bool) -> Manifest:
    """The build, every stage done, in the target's place."""
    for leftover in (UNITS_DIR, STATS_FILE):  # a cluster build's work, where a single process finished it
        path = staging.building / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    seconds = state.manifest.seconds
    seconds["total"] = round(seconds.get("read_and_chunk", 0) + seconds.get("bm25", 0), 2)
    manifest = staging.commit(state)
    if show_progress:
        summary = DropTally.from_dict(manifest.dropped).summary()
        console.print(f"{manifest.documents:,} documents -> {manifest.passages:,} passages; {summary}")
    return manifest


def _passage_stage(
    building: Path, state: BuildState, readers: list[DocumentReader], settings: IndexSettings, show_progress: bool
) -> None:
    """Documents -> passages -> the store, from the state's checkpoint on, with a checkpoint at every
    batch written (the store's bytes, the position in the inputs and every count, saved together)."""
    checkpoint, manifest = state.passages, state.manifest
    writer, seen = _open_store(building, checkpoint, settings.store_batch_rows, manifest.build)
    tally = DropTally.from_dict(checkpoint.dropped)
    seconds_before, started = manifest.seconds.get("read_and_chunk", 0.0), time.perf_counter()
    done_bytes = sum(reader.size for reader in readers[: checkpoint.input])
    with meter("indexing", sum(r.size for r in readers), ("docs", "passages"), enabled=show_progress) as m:
        for number in range(checkpoint.input, len(readers)):
            reader, record = readers[number], manifest.inputs[number]
            reader.tally = tally
            consumed = checkpoint.consumed if number == checkpoint.input else 0
            for document in reader.documents_after(consumed):
                consumed += 1
                passages = _new_passages(document, reader, seen, tally, settings.chunk)
                record.documents += bool(passages)
                record.passages += len(passages)
                if passages and writer.add(passages):
                    manifest.seconds["read_and_chunk"] = round(seconds_before + time.perf_counter() - started, 2)
                    _checkpoint(building, state, writer, tally, len(seen), number, consumed)
                m.advance(completed=done_bytes + reader.bytes_read(), docs=1, passages=len(passages))
            done_bytes += reader.size
        written = writer.close()
    if written == 0:
        empty = [
            f"{reader.path}: {reader.why_empty()}" for reader, r in zip(readers, manifest.inputs) if not r.documents
        ]
        raise OpenbookError(f"no passages came out of the inputs ({tally.summary()}): " + "; ".join(empty))
    manifest.documents, manifest.passages, manifest.dropped = len(seen), written, tally.as_dict()
    manifest.seconds["read_and_chunk"] = round(seconds_before + time.perf_counter() - started, 2)
    state.passages = replace(state.passages, done=True, dropped=manifest.dropped)
    state.save(building)


def _open_store(
    building: Path, checkpoint: PassageCheckpoint, batch_rows: int, build: str
) -> tuple[PassageWriter, set[str]]:
    """The store's writer at the checkpoint, and the ids of the documents whose passages it holds."""
    if not checkpoint.batches:
        return PassageWriter(building, batch_rows, build), set()
    try:
        writer = PassageWriter.resume(building, checkpoint.batches, checkpoint.offset, batch_rows)
    except (OSError, ValueError, StopIteration) as error:  # pyarrow's errors are ValueErrors; a stream cut short stops
        raise OpenbookError(
            f"{building} does not hold the passages its checkpoint names ({error}); it is discarded: run the same "
            "command again to build from the start"
        ) from None
    return writer, writer.doc_ids()


def _new_passages(
    document: Document, reader: DocumentReader, seen: set[str], tally: DropTally, chunk: ChunkSettings
) -> list[Passage]:
    """The passages of a document not seen before (one seen, or without a sentence, is counted as dropped)."""
    if document.id in seen:  # named by its id: documents do not keep their line
        tally.drop("duplicate document id", f"{reader.path} (id {document.id!r})")
        return []
    passages = chunk_document(document, chunk)
    if not passages:  # left out of `seen`, so the ids a resumed build reads back from the store are all of them
        tally.drop("text without a sentence", f"{reader.path} (id {document.id!r})")
        return []
    seen.add(document.id)
    return passages


def _checkpoint(
    building: Path,
    state: BuildState,
    writer: PassageWriter,
    tally: DropTally,
    documents: int,
    number: int,
    consumed: int,
) -> None:
    writer.sync()  # the batches on disk before the state that names them
    batches, offset = writer.written()
    state.manifest.documents, state.manifest.passages = documents, writer.count
    state.passages = PassageCheckpoint(
        input=number, consumed=consumed, batches=batches, offset=offset, dropped=tally.as_dict()
    )
    state.save(building)


def _bm25_stage(building: Path, state: BuildState, engine: str, show_progress: bool) -> None:
    """The BM25 index over the store, built in a folder of its own and renamed when complete."""
    partial = building / f"{BM25_DIR}.partial"
    for stale in (partial, building / BM25_DIR):
        shutil.rmtree(stale, ignore_errors=True)
    store = PassageStore(building)
    if show_progress:
        console.print(f"building the BM25 index ({engine}) over {len(store):,} passages…")
    started = time.perf_counter()
    builder = new_builder(engine, partial)
    for batch in store.iter_batches():
        builder.add([passage.indexed_text() for passage in batch])
    params = {**builder.finish(), "build": state.manifest.build}
    save_params(partial, params)
    sync_files(partial)
    partial.rename(building / BM25_DIR)
    state.manifest.indexes["bm25"] = params
    state.manifest.seconds["bm25"] = round(time.perf_counter() - started, 2)
    state.bm25_done = True
    state.save(building)
