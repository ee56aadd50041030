"""`openbook index`: corpus files -> documents -> passages -> passage store + BM25 index + manifest.

Each step streams: documents are read one at a time, passages are written in batches, and only the
BM25 engine decides how much it holds (see `index/bm25.py`).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from openbook.corpus import ChunkSettings, DropTally, FieldMap, chunk_document
from openbook.corpus.formats import DocumentReader
from openbook.errors import OpenbookError
from openbook.index.bm25 import new_builder
from openbook.index.manifest import MANIFEST_FILE, InputRecord, Manifest
from openbook.index.store import PassageWriter
from openbook.progress import console, meter
from openbook.provenance import library_versions, sha256_of


@dataclass(frozen=True)
class IndexSettings:
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    bm25_engine: str = "bm25s"
    corpus_format: str | None = None  # None: detected per file
    fields: FieldMap = field(default_factory=FieldMap)
    batch_passages: int = 4096


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


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OpenbookError(f"{out} is not empty; choose another folder or pass --overwrite")
        if not (out / MANIFEST_FILE).exists() and not (out / "passages.arrow").exists():
            raise OpenbookError(f"{out} holds files that are not an openbook index; refusing to delete them")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _labels(files: list[Path]) -> list[str]:
    """Each input's name for the ids of documents that carry none: its file name, or its path below
    the inputs' common folder where two inputs share a name (folders of part-0.jsonl files)."""
    names = [path.name for path in files]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([path.resolve().parent for path in files]))
    return [path.resolve().relative_to(common).as_posix() for path in files]


def _built_from(out: Path, records: list[InputRecord], settings: IndexSettings) -> Manifest | None:
    """The manifest of an index already built in `out` from the same inputs and settings, if any."""
    if not (out / MANIFEST_FILE).is_file():
        return None
    manifest = Manifest.load(out)
    same_inputs = [(r.path, r.sha256) for r in manifest.inputs] == [(r.path, r.sha256) for r in records]
    same_settings = (
        manifest.chunking == settings.chunk.as_dict()
        and manifest.indexes.get("bm25", {}).get("engine") == settings.bm25_engine
        and manifest.fields == asdict(settings.fields)
        and [r.format for r in manifest.inputs] == [r.format for r in records]
    )
    return manifest if same_inputs and same_settings else None


def build_index(
    inputs: list[Path],
    out: Path,
    settings: IndexSettings = IndexSettings(),
    show_progress: bool = True,
    overwrite: bool = False,
) -> Manifest:
    """Passages + BM25 into `out`. An index already there from the same inputs and settings is kept
    (so `openbook index … --dense MODEL` run again resumes the embedding, not the whole build)."""
    files = expand_inputs(inputs)
    tally = DropTally()
    # open (and so validate) every input before any work, so a bad last file costs nothing
    readers = [
        DocumentReader(path, settings.corpus_format, settings.fields, tally, label)
        for path, label in zip(files, _labels(files))
    ]
    records = [InputRecord(path=str(r.path), format=r.format, bytes=r.size, sha256=sha256_of(r.path)) for r in readers]
    if not overwrite and (existing := _built_from(out, records, settings)) is not None:
        console.print(f"{out} already holds these passages and their BM25 index: kept")
        return existing
    _prepare_output(out, overwrite)
    started = time.perf_counter()
    writer = PassageWriter(out)
    bm25 = new_builder(settings.bm25_engine, out)
    seen_ids: set[str] = set()
    total_bytes = sum(r.size for r in readers)
    done_bytes = 0
    pending_texts: list[str] = []
    with meter("indexing", total_bytes, ("docs", "passages"), enabled=show_progress) as m:
        for reader, record in zip(readers, records):
            for document in reader:
                if document.id in seen_ids:
                    # named by its id: documents do not keep their line
                    tally.drop("duplicate document id", f"{reader.path} (id {document.id!r})")
                    continue
                seen_ids.add(document.id)
                passages = chunk_document(document, settings.chunk)
                writer.add(passages)
                pending_texts.extend(p.indexed_text() for p in passages)
                if len(pending_texts) >= settings.batch_passages:
                    bm25.add(pending_texts)
                    pending_texts = []
                record.documents += 1
                record.passages += len(passages)
                m.advance(completed=done_bytes + reader.bytes_read(), docs=1, passages=len(passages))
            done_bytes += reader.size
        bm25.add(pending_texts)
        passages_written = writer.close()
        read_seconds = m.seconds()
    if passages_written == 0:
        raise OpenbookError(f"no passages came out of the inputs ({tally.summary()})")
    if show_progress:
        console.print(f"building the BM25 index ({settings.bm25_engine}) over {passages_written:,} passages…")
    bm25_started = time.perf_counter()
    params = bm25.finish()
    bm25_seconds = time.perf_counter() - bm25_started
    manifest = Manifest(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        chunking=settings.chunk.as_dict(),
        fields=asdict(settings.fields),
        inputs=records,
        documents=len(seen_ids),
        passages=passages_written,
        dropped=tally.as_dict(),
        indexes={"bm25": params},
        seconds={
            "read_and_chunk": round(read_seconds, 2),
            "bm25": round(bm25_seconds, 2),
            "total": round(time.perf_counter() - started, 2),
        },
        versions=library_versions(("tantivy",) if settings.bm25_engine == "tantivy" else ()),
    )
    manifest.save(out)
    if show_progress:
        console.print(f"{manifest.documents:,} documents -> {manifest.passages:,} passages; {tally.summary()}")
    return manifest
