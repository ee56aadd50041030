"""The passage store: one Arrow IPC file, memory-mapped, so passage N is one lookup away.

Arrow IPC (uncompressed) rather than Parquet: reading it back is zero-copy through mmap, so a store
larger than RAM can serve search results without being loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from openbook.errors import OpenbookError
from openbook.index.parts import (
    PASSAGES_FILE,
    DamagedIndex,
    check_build,
    check_count,
    check_sizes,
    committed_manifest,
    fsync_path,
)
from openbook.records import Passage

BUILD_KEY = b"openbook.build"  # the schema's metadata key holding the index's build id
BATCH_ROWS = 8192
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("doc_id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("chunk", pa.int32()),
    ]
)


def record_batch(passages: Sequence[Passage], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    """Passages as one Arrow record batch of the store's columns (`schema`: SCHEMA, its metadata aside)."""
    return pa.record_batch({name: [getattr(p, name) for p in passages] for name in SCHEMA.names}, schema=schema)


class PassageWriter:
    """Appends passages in record batches; the row number of a passage is its index position.

    A stopped writer is resumed from a point it reported (`written()` after `add` wrote a batch):
    an Arrow file without its footer is, after its 8-byte magic, an Arrow stream, so the batches
    before that point are read back and written again into a new file, which then goes on. The
    same passages in the same batches give the same bytes, whether or not the writer was stopped."""

    def __init__(self, directory: Path, batch_rows: int = BATCH_ROWS, build: str = ""):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / PASSAGES_FILE
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_file(self._sink, SCHEMA.with_metadata({BUILD_KEY: build.encode()}))
        self._pending: list[Passage] = []
        self._batch_rows = batch_rows
        self.count = 0
        self.batches = 0

    @classmethod
    def resume(cls, directory: Path, batches: int, offset: int, batch_rows: int = BATCH_ROWS) -> PassageWriter:
        """A writer holding the first `batches` batches (`offset` bytes) of the store a stopped writer
        left in `directory`, ready for the passages after them."""
        path = directory / PASSAGES_FILE
        interrupted = path.with_name(PASSAGES_FILE + ".interrupted")
        if not interrupted.exists():  # else a resume stopped while copying: the first copy is the source
            path.replace(interrupted)
        data = pa.memory_map(str(interrupted)).read_buffer(offset)
        reader = pa.ipc.open_stream(data.slice(8))  # past the file format's magic
        build = (reader.schema.metadata or {}).get(BUILD_KEY, b"").decode()
        writer = cls(directory, batch_rows, build)
        for _ in range(batches):
            batch = reader.read_next_batch()
            writer._writer.write_batch(batch)
            writer.count += batch.num_rows
            writer.batches += 1
        writer.sync()
        interrupted.unlink()
        return writer

    def add(self, passages: Sequence[Passage]) -> bool:
        """Whether a batch was written: then every passage added so far is in the file."""
        self._pending.extend(passages)
        self.count += len(passages)
        if len(self._pending) >= self._batch_rows:
            self._flush()
            return True
        return False

    def written(self) -> tuple[int, int]:
        """(batches, bytes) in the file so far: where `resume` picks up."""
        return self.batches, self._sink.tell()

    def sync(self) -> None:
        """What is written so far, on disk (a power cut after a checkpoint keeps what it names)."""
        fsync_path(self.path)

    def doc_ids(self) -> set[str]:
        """The document ids of the passages written so far (a resumed build's seen documents)."""
        self._sink.flush()
        reader = pa.ipc.open_stream(pa.memory_map(str(self.path)).read_buffer(self._sink.tell()).slice(8))
        return {doc_id for _ in range(self.batches) for doc_id in reader.read_next_batch()["doc_id"].to_pylist()}

    def _flush(self) -> None:
        if not self._pending:
            return
        self._writer.write_batch(record_batch(self._pending))
        self._pending = []
        self.batches += 1

    def close(self) -> int:
        self._flush()
        self._writer.close()
        self._sink.close()
        self.sync()
        return self.count


class PassageStore:
    """Read access to a passage store by row number: a lookup is a binary search over record
    batches and a zero-copy slice of the memory-mapped file (no `take` over the whole table).

    In a complete index the store is checked against the manifest first: its size, its build id and
    its number of passages, so a store cut short or copied from another index is named, not misread."""

    def __init__(self, directory: Path):
        directory = Path(directory)
        self.path = directory / PASSAGES_FILE
        manifest = committed_manifest(directory)
        if manifest is not None:
            check_sizes(directory, manifest, PASSAGES_FILE)
        try:
            self._reader = pa.ipc.open_file(pa.memory_map(str(self.path), "r"))
            self._batches = [self._reader.get_batch(i) for i in range(self._reader.num_record_batches)]
        except FileNotFoundError:
            raise OpenbookError(
                f"{directory} is not a whole openbook index (no {PASSAGES_FILE}); build one with `openbook index`"
            ) from None
        except (pa.ArrowException, OSError) as error:  # a store cut short: "Not an Arrow file" alone says nothing
            raise DamagedIndex(directory, manifest, f"{self.path} is not a whole passage store ({error})") from None
        self._starts = np.cumsum([0] + [b.num_rows for b in self._batches])
        if manifest is not None:
            check_build(directory, manifest, self.path, self.build())
            check_count(directory, manifest, self.path, "passages", len(self))

    def validate(self) -> None:
        """Every batch read whole and checked (offsets, lengths, UTF-8): what `verify-index` adds to the
        checksums, and all it can check of a store built before they were recorded."""
        for number, batch in enumerate(self._batches):
            try:
                batch.validate(full=True)
            except pa.ArrowInvalid as error:
                raise DamagedIndex(
                    self.path.parent,
                    committed_manifest(self.path.parent),
                    f"{self.path}: batch {number} is damaged ({error})",
                ) from None

    def build(self) -> str:
        """The build id the store was written with ("" for a store written before ids were)."""
        return (self._reader.schema.metadata or {}).get(BUILD_KEY, b"").decode()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def get(self, rows: Sequence[int] | np.ndarray) -> list[Passage]:
        wanted = np.asarray(rows, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"passage row out of range 0..{len(self) - 1}")
        batch_of = np.searchsorted(self._starts, wanted, side="right") - 1
        passages = []
        for row, b in zip(wanted.tolist(), batch_of.tolist()):
            record = self._batches[b].slice(row - int(self._starts[b]), 1).to_pylist()[0]
            passages.append(Passage(**record))
        return passages

    def iter_batches(self, start: int = 0) -> Iterator[list[Passage]]:
        """All passages from row `start` on, a record batch at a time."""
        for batch, first in zip(self._batches, self._starts[:-1].tolist()):
            if first + batch.num_rows <= start:
                continue
            yield [Passage(**record) for record in batch.slice(max(start - first, 0)).to_pylist()]
