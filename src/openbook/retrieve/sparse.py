"""BM25 retrieval over an index folder built by `openbook index`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.index.bm25 import open_index
from openbook.index.manifest import MANIFEST_FILE, Manifest
from openbook.index.store import PassageStore
from openbook.types import Hit


def check_index_folder(directory: Path) -> Manifest:
    if not (directory / MANIFEST_FILE).is_file():
        raise OpenbookError(f"{directory} is not an openbook index (no {MANIFEST_FILE}); build one with `openbook index`")
    return Manifest.load(directory)


class BM25Retriever:
    name = "bm25"

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        self.manifest = check_index_folder(directory)
        self.store = PassageStore(directory)
        self.index = open_index(directory)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        rows, scores = self.index.search(queries, k)
        results: list[list[Hit]] = []
        for query_rows, query_scores in zip(rows, scores):
            # a passage sharing no term with the query (score 0) is no hit
            kept = [(int(r), float(s)) for r, s in zip(query_rows, query_scores) if r >= 0 and s > 0]
            passages = self.store.get([r for r, _ in kept])
            results.append([Hit(passage=p, score=s, rank=i, retriever=self.name)
                            for i, (p, (_, s)) in enumerate(zip(passages, kept))])
        return results
