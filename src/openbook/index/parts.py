"""The files an index is made of, and the cheap checks every open makes: each recorded part is there
at its recorded size and carries the index's build id.

The parts are the passage store, every file of the BM25 folder and the dense shards; the manifest
records each with its size and checksum when the build completes (`record_parts`). Opening a part
checks sizes and build ids (a stat and a few bytes); `openbook verify-index` also reads every byte
against the checksums (`index/verify.py`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from openbook.corpus import ChunkSettings, FieldMap
from openbook.errors import OpenbookError
from openbook.index.manifest import MANIFEST_FILE, Manifest, PartRecord
from openbook.provenance import sha256_of

PASSAGES_FILE = "passages.arrow"
BM25_DIR = "bm25"
DENSE_DIR = "dense"
SHARD_PATTERN = "shard-*.f16"
# what an index folder may hold: anything else is not the index's to replace or delete
INDEX_ENTRIES = frozenset({MANIFEST_FILE, MANIFEST_FILE + ".partial", PASSAGES_FILE, BM25_DIR, DENSE_DIR})


def part_files(folder: Path) -> list[str]:
    """The parts of the index in `folder`, as paths below it: the store, the BM25 files (tantivy's
    empty lock files aside) and the dense shards."""
    parts = [PASSAGES_FILE] if (folder / PASSAGES_FILE).is_file() else []
    bm25 = folder / BM25_DIR
    if bm25.is_dir():
        parts += sorted(
            path.relative_to(folder).as_posix()
            for path in bm25.rglob("*")
            if path.is_file() and not (path.name.startswith(".tantivy-") and path.name.endswith(".lock"))
        )
    parts += sorted(path.relative_to(folder).as_posix() for path in (folder / DENSE_DIR).glob(SHARD_PATTERN))
    return parts


def fsync_path(path: Path) -> None:
    """A file's data, or a folder's entries, flushed to disk (so a power cut keeps what a later state names)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def checksum(path: Path) -> str:
    """The file's sha256, with its data flushed to disk first (a part recorded is a part kept)."""
    fsync_path(path)
    return sha256_of(path)


def sync_files(folder: Path) -> None:
    """Every file below `folder` flushed to disk (before a state that names them as done is saved)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fsync_path(path)


def record_parts(folder: Path, known: Mapping[str, PartRecord]) -> dict[str, PartRecord]:
    """Size and checksum of every part; a part `known` at the same size (linked from the index this
    build extends, never written since) keeps its record rather than being read again."""
    records = {}
    for part in part_files(folder):
        size = (folder / part).stat().st_size
        found = known.get(part)
        records[part] = (
            found if found is not None and found.bytes == size else PartRecord(size, checksum(folder / part))
        )
    return records


def committed_manifest(directory: Path) -> Manifest | None:
    """The manifest of a complete index in `directory`; None in a folder still being built, whose
    manifest is written last (its parts are checked when the build completes)."""
    return Manifest.load(directory) if (directory / MANIFEST_FILE).is_file() else None


def rebuild_command(directory: Path, manifest: Manifest | None) -> str:
    """The `openbook index` command that rebuilds the index in `directory`, from what its manifest records."""
    if manifest is None or not manifest.inputs:
        return f"openbook index … --out {directory}"
    words = ["openbook index", *(record.path for record in manifest.inputs), "--out", str(directory)]
    chunking = ChunkSettings(**manifest.chunking) if manifest.chunking else ChunkSettings()
    if chunking.size != ChunkSettings().size:
        words += ["--chunk-size", str(chunking.size)]
    if chunking.overlap:
        words += ["--overlap", str(chunking.overlap)]
    engine = manifest.indexes.get("bm25", {}).get("engine")
    if engine not in (None, "bm25s"):
        words += ["--engine", str(engine)]
    for name, column in manifest.fields.items():
        if column != getattr(FieldMap(), name, column):
            words += [f"--{name}-field", column]
    dense = manifest.indexes.get("dense")
    if dense:
        words += ["--dense", str(dense.get("model")), "--shard-rows", str(dense.get("shard_rows"))]
    return " ".join(words)


class DamagedIndex(OpenbookError):
    """A part that is missing, cut short or from another index: what is wrong (`problem`), and the
    command that rebuilds the index (it replaces the damaged one once the new one is complete)."""

    def __init__(self, directory: Path, manifest: Manifest | None, problem: str):
        self.problem = problem
        super().__init__(
            f"{problem}; the index in {directory} is damaged: rebuild it with `{rebuild_command(directory, manifest)}`"
        )


def check_sizes(directory: Path, manifest: Manifest, under: str) -> None:
    """Every part the manifest records below `under` (a file or a folder) is there at its recorded size."""
    for part, record in manifest.parts.items():
        if part != under and not part.startswith(under.rstrip("/") + "/"):
            continue
        path = directory / part
        if not path.is_file():
            raise DamagedIndex(directory, manifest, f"{path} is missing")
        size = path.stat().st_size
        if size != record.bytes:
            raise DamagedIndex(
                directory, manifest, f"{path} has {size:,} bytes, not the {record.bytes:,} it was built with"
            )


def check_build(directory: Path, manifest: Manifest, path: Path, found: object) -> None:
    """A part's build id is its index's: a part copied from another index is refused, not misread."""
    if manifest.build and found != manifest.build:
        raise DamagedIndex(
            directory,
            manifest,
            f"{path} belongs to another index (build {found or 'unrecorded'}, not {manifest.build})",
        )


def check_count(directory: Path, manifest: Manifest, path: Path, what: str, count: int) -> None:
    """A part holds one entry per passage of the manifest (a store or BM25 index of another corpus does not)."""
    if count != manifest.passages:
        raise DamagedIndex(
            directory, manifest, f"{path} holds {count:,} {what}, the index {manifest.passages:,} passages"
        )
