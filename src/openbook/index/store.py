"""The passage store: one Arrow IPC file, memory-mapped, so passage N is one lookup away.

Arrow IPC (uncompressed) rather than Parquet: reading it back is zero-copy through mmap, so a store
larger than RAM can serve search results without being loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from openbook.types import Passage

PASSAGES_FILE = "passages.arrow"
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("doc_id", pa.string()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("chunk", pa.int32()),
])


class PassageWriter:
    """Appends passages in record batches; the row number of a passage is its index position."""

    def __init__(self, directory: Path, batch_rows: int = 8192):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / PASSAGES_FILE
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_file(self._sink, SCHEMA)
        self._pending: list[Passage] = []
        self._batch_rows = batch_rows
        self.count = 0

    def add(self, passages: Sequence[Passage]) -> None:
        self._pending.extend(passages)
        self.count += len(passages)
        if len(self._pending) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        columns = {
            "id": [p.id for p in self._pending],
            "doc_id": [p.doc_id for p in self._pending],
            "title": [p.title for p in self._pending],
            "text": [p.text for p in self._pending],
            "chunk": [p.chunk for p in self._pending],
        }
        self._writer.write_batch(pa.record_batch(columns, schema=SCHEMA))
        self._pending = []

    def close(self) -> int:
        self._flush()
        self._writer.close()
        self._sink.close()
        return self.count


class PassageStore:
    """Read access to a passage store by row number."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / PASSAGES_FILE
        self._source = pa.memory_map(str(self.path), "r")
        self._table = pa.ipc.open_file(self._source).read_all()

    def __len__(self) -> int:
        return self._table.num_rows

    def get(self, rows: Sequence[int]) -> list[Passage]:
        taken = self._table.take(pa.array(rows, type=pa.int64())).to_pylist()
        return [Passage(**record) for record in taken]

    def iter_batches(self, batch_rows: int = 8192) -> Iterator[list[Passage]]:
        for start in range(0, len(self), batch_rows):
            records = self._table.slice(start, batch_rows).to_pylist()
            yield [Passage(**record) for record in records]
