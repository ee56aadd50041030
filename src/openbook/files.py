"""Files written whole or not at all: a stop never leaves a half-written file where a good one was."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str, durable: bool = False) -> Path:
    """`text` (UTF-8) at `path`, written beside it and renamed into place; with `durable`, flushed to
    disk before the rename, so that not even a power cut can leave the new name on unwritten data."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as sink:
        sink.write(text)
        if durable:
            sink.flush()
            os.fsync(sink.fileno())
    partial.replace(path)
    return path
