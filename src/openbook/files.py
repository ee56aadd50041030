"""Files written whole or not at all: a stop never leaves a half-written file where a good one was."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str | bytes, durable: bool = False) -> Path:
    """`text` (str as UTF-8, or bytes) at `path`, written beside it and renamed into place; with
    `durable`, flushed to disk before the rename, so that not even a power cut can leave the new name
    on unwritten data."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as sink:
        sink.write(text.encode() if isinstance(text, str) else text)
        if durable:
            sink.flush()
            os.fsync(sink.fileno())
    partial.replace(path)
    return path
