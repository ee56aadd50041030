"""Transparent reading of .zst, .gz and .bz2 files as streams of byte lines."""

from __future__ import annotations

import bz2
import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from openbook.errors import InputError

COMPRESSED_SUFFIXES = (".zst", ".zstd", ".gz", ".bz2")
_READ_SIZE = 1 << 20


def strip_compression_suffix(path: Path) -> Path:
    """`dump.jsonl.zst` -> `dump.jsonl`: the suffix that tells the format."""
    return path.with_suffix("") if path.suffix.lower() in COMPRESSED_SUFFIXES else path


class _ZstdReader(io.RawIOBase):
    """zstd frames one after another, decompressed as they are read. Data that stops inside a frame
    (a truncated download) is an error here; zstandard's own stream reader just ends there."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._inside_frame = False
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = self._raw.read(_READ_SIZE)
            if not chunk:
                if self._inside_frame:
                    raise EOFError("the data ends inside a zstd frame (a truncated file?)")
                return 0
            self._pending = memoryview(self._decompress(chunk))
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            out.append(self._frame.decompress(chunk))
            self._inside_frame = not self._frame.eof
            chunk = b""
            if self._frame.eof:  # the next frame starts in what is left
                chunk = self._frame.unused_data
                self._frame = self._decompressor.decompressobj()
        return b"".join(out)


class InputStream:
    """A decompressed byte stream over a file, which also tells how far into the file it has read."""

    def __init__(self, path: Path):
        self.path = path
        self._raw: BinaryIO = path.open("rb")
        suffix = path.suffix.lower()
        if suffix in (".zst", ".zstd"):
            self.stream: BinaryIO = io.BufferedReader(_ZstdReader(self._raw), buffer_size=_READ_SIZE)  # type: ignore[arg-type]
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
        """(1-based line number, raw line without its newline). Compressed data that is damaged, cut
        short or not of its suffix's kind is an `InputError` at the line it stopped, after the lines
        before it."""
        number = 0
        try:
            for number, line in enumerate(self.stream, start=1):
                if number == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (Excel's CSV)
                yield number, line.rstrip(b"\r\n")
        except (EOFError, OSError, zlib.error, zstandard.ZstdError) as error:
            raise InputError(self.path, f"damaged or truncated {self.path.suffix} data: {error}", number + 1) from None

    def close(self) -> None:
        self.stream.close()
        self._raw.close()

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
