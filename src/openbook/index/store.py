"""The passage store: one Arrow IPC file, memory-mapped, so passage N is one lookup away.

Arrow IPC (uncompressed) rather than Parquet: reading it back is zero-copy through mmap, so a store
larger than RAM can serve search results without being loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from openbook.records import Passage

PASSAGES_FILE = "passages.arrow"
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("doc_id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("chunk", pa.int32()),
    ]
)


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
    """Read access to a passage store by row number: a lookup is a binary search over record
    batches and a zero-copy slice of the memory-mapped file (no `take` over the whole table)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / PASSAGES_FILE
        self._reader = pa.ipc.open_file(pa.memory_map(str(self.path), "r"))
        self._batches = [self._reader.get_batch(i) for i in range(self._reader.num_record_batches)]
        self._starts = np.cumsum([0] + [b.num_rows for b in self._batches])

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
