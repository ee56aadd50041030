"""Transparent reading of .zst, .gz and .bz2 files as streams of byte lines."""

from __future__ import annotations

import bz2
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

COMPRESSED_SUFFIXES = (".zst", ".zstd", ".gz", ".bz2")
_READ_SIZE = 1 << 20


def strip_compression_suffix(path: Path) -> Path:
    """`dump.jsonl.zst` -> `dump.jsonl`: the suffix that tells the format."""
    return path.with_suffix("") if path.suffix.lower() in COMPRESSED_SUFFIXES else path


class InputStream:
    """A decompressed byte stream over a file, which also tells how far into the file it has read."""

    def __init__(self, path: Path):
        self.path = path
        self._raw: BinaryIO = path.open("rb")
        suffix = path.suffix.lower()
        if suffix in (".zst", ".zstd"):
            reader = zstandard.ZstdDecompressor().stream_reader(self._raw, read_size=_READ_SIZE)
            self.stream: BinaryIO = io.BufferedReader(reader, buffer_size=_READ_SIZE)  # type: ignore[arg-type]
        elif suffix == ".gz":
            self.stream = gzip.GzipFile(fileobj=self._raw)  # type: ignore[assignment]
        elif suffix == ".bz2":
            self.stream = bz2.BZ2File(self._raw)  # type: ignore[assignment]
        else:
            self.stream = self._raw

    def compressed_position(self) -> int:
        """Bytes of the file consumed so far (for progress and ETA over compressed input)."""
        return self._raw.tell()

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(1-based line number, raw line without its newline)."""
        for number, line in enumerate(self.stream, start=1):
            yield number, line.rstrip(b"\r\n")

    def close(self) -> None:
        self.stream.close()
        self._raw.close()

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
