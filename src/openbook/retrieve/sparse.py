"""BM25 retrieval over an index folder built by `openbook index`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.index.bm25 import BM25_DIR, PARAMS_FILE, open_index
from openbook.index.manifest import MANIFEST_FILE, Manifest
from openbook.index.store import PASSAGES_FILE, PassageStore
from openbook.records import Hit
from openbook.retrieve.base import hits_from_rows


def check_index_folder(directory: Path) -> Manifest:
    """The index's manifest, once its parts are there: a folder missing one is named, not half-opened."""
    for part in (MANIFEST_FILE, PASSAGES_FILE, f"{BM25_DIR}/{PARAMS_FILE}"):
        if not (directory / part).is_file():
            what = "an" if part == MANIFEST_FILE else "a whole"  # a half-copied index is named as such
            raise OpenbookError(
                f"{directory} is not {what} openbook index (no {part}); build one with `openbook index`"
            )
    return Manifest.load(directory)


class BM25Retriever:
    name = "bm25"

    def __init__(self, directory: str | Path, store: PassageStore | None = None):
        directory = Path(directory)
        self.manifest = check_index_folder(directory)
        self.store = store or PassageStore(directory)
        self.index = open_index(directory)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        rows, scores = self.index.search(queries, k)
        return hits_from_rows(self.store, rows, scores, self.name, keep=0.0)  # score 0: no shared term
