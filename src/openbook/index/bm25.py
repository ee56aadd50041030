"""BM25 over the passage store, with two interchangeable engines.

- `bm25s`: sparse-matrix BM25 (Lucene variant) in numpy, Snowball stemming and English stopwords;
  the whole token list is held while building, the saved matrix is memory-mapped for search.
- `tantivy`: the Rust search library (BM25 with the same stopwords and stemming), built streaming on disk.

Both store a passage's row number, so hits resolve through the passage store. The choice between
them is measured in `bench/index_bm25.py`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from openbook.errors import ConfigError
from openbook.index.manifest import Manifest, read_json, save_json
from openbook.index.parts import (
    BM25_DIR,
    DamagedIndex,
    check_build,
    check_count,
    check_sizes,
    committed_manifest,
    rebuild_command,
)

PARAMS_FILE = "openbook.bm25.json"
ENGINES = ("bm25s", "tantivy")


class SparseIndexBuilder(Protocol):
    def add(self, texts: Sequence[str]) -> None: ...
    def finish(self) -> dict[str, object]: ...


class SparseIndex(Protocol):
    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores, each of shape (len(queries), k'), best first; k' = min(k, passages).
        A row of -1 marks a slot with no matching passage."""
        ...


def new_builder(engine: str, folder: Path, k1: float = 1.2, b: float = 0.75) -> SparseIndexBuilder:
    """A builder writing the BM25 index into `folder` (created); `finish` returns its parameters,
    which `save_params` records beside it."""
    if engine == "bm25s":
        return Bm25sBuilder(folder, k1=k1, b=b)
    if engine == "tantivy":
        return TantivyBuilder(folder)
    raise ConfigError(f"unknown BM25 engine {engine!r}; choose from {', '.join(ENGINES)}")


def save_params(folder: Path, params: dict[str, object]) -> None:
    save_json(folder / PARAMS_FILE, params)


def check_bm25(directory: Path, manifest: Manifest) -> dict[str, object]:
    """The cheap check of a complete index's BM25 part: its files at their recorded sizes, its build
    id the index's, one document per passage. Its parameters."""
    check_sizes(directory, manifest, BM25_DIR)
    folder = directory / BM25_DIR
    params = read_json(
        folder / PARAMS_FILE, "a BM25 index description", f"rebuild it with `{rebuild_command(directory, manifest)}`"
    )
    check_build(directory, manifest, folder / PARAMS_FILE, params.get("build", ""))
    if params.get("engine") == "bm25s":  # tantivy's count needs the index opened: `open_index` checks it
        counts = read_json(
            folder / "params.index.json",
            "a bm25s index description",
            f"rebuild it with `{rebuild_command(directory, manifest)}`",
        )
        check_count(directory, manifest, folder, "documents", int(counts.get("num_docs", -1)))
    return params


def open_index(directory: Path) -> SparseIndex:
    """The BM25 index of the index in `directory`. In a complete index it is checked against the
    manifest first (`check_bm25`): a damaged file is named with the command that rebuilds the index,
    never left to a library's "mmap length is greater than file size"."""
    manifest = committed_manifest(directory)
    folder = directory / BM25_DIR
    params = (
        check_bm25(directory, manifest)
        if manifest is not None
        else read_json(folder / PARAMS_FILE, "a BM25 index description")
    )
    try:
        index: Bm25sIndex | TantivyIndex = (
            Bm25sIndex(folder) if params.get("engine") == "bm25s" else TantivyIndex(folder)
        )
    except (OSError, ValueError, KeyError, EOFError) as error:  # bm25s's and tantivy's words for a cut file
        raise DamagedIndex(
            directory, manifest, f"{folder} is not a whole BM25 index ({type(error).__name__}: {error})"
        ) from None
    if manifest is not None:
        check_count(directory, manifest, folder, "documents", index.size)
    return index


def import_bm25s():
    """bm25s, imported with JAX kept on the CPU. Importing bm25s imports JAX when it is installed
    (for its top-k) and runs one operation, which on a GPU machine makes JAX take 75 % of the GPU's
    memory for the whole process (seen on an H100: 60 GB held beside a 22M-parameter encoder in training).
    openbook's BM25 never needs the GPU, so JAX gets the CPU unless the user chose otherwise."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import bm25s

    return bm25s


def _english_tokenizer():
    bm25s = import_bm25s()
    import Stemmer

    return bm25s.tokenization.Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")


class Bm25sBuilder:
    def __init__(self, directory: Path, k1: float, b: float):
        self.directory = directory
        self.k1, self.b = k1, b
        self._tokenizer = _english_tokenizer()
        self._token_ids: list[list[int]] = []

    def add(self, texts: Sequence[str]) -> None:
        self._token_ids.extend(self._tokenizer.streaming_tokenize(texts))

    def finish(self) -> dict[str, object]:
        bm25s = import_bm25s()

        engine = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        engine.index((self._token_ids, self._tokenizer.get_vocab_dict()), show_progress=False)
        self._token_ids = []
        self.directory.mkdir(parents=True, exist_ok=True)
        engine.save(str(self.directory))
        self._tokenizer.save_vocab(str(self.directory))
        self._tokenizer.save_stopwords(str(self.directory))
        return {
            "engine": "bm25s",
            "k1": self.k1,
            "b": self.b,
            "method": "lucene",
            "stemmer": "snowball-english",
            "stopwords": "bm25s-en",
        }


class Bm25sIndex:
    """Search with bm25s. Over large indexes the numba scorer is ~30x faster than numpy
    (956 vs 31 queries/s on 960K passages), but compiling it costs ~6 s per process, so small
    indexes, where numpy is already fast, keep numpy."""

    def __init__(self, directory: Path, numba_from_passages: int = 100_000):
        bm25s = import_bm25s()

        num_docs = json.loads((directory / "params.index.json").read_text())["num_docs"]
        backend = "numba" if num_docs >= numba_from_passages and _numba_available() else "numpy"
        self._engine = bm25s.BM25.load(str(directory), mmap=True, override_params={"backend": backend})
        self._tokenizer = _english_tokenizer()
        self._tokenizer.load_vocab(str(directory))
        self._tokenizer.load_stopwords(str(directory))
        self.size = int(self._engine.scores["num_docs"])

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        token_ids = self._tokenizer.tokenize(
            list(queries), update_vocab=False, return_as="ids", show_progress=False, allow_empty=False
        )
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        # a query with no known word (all stopwords, or unseen) finds nothing, as with tantivy
        asked = [i for i, ids in enumerate(token_ids) if ids]
        if asked and k > 0:
            found, found_scores = self._engine.retrieve(
                [token_ids[i] for i in asked], k=k, show_progress=False, n_threads=1
            )
            rows[asked], scores[asked] = found, found_scores
        return rows, scores


def _numba_available() -> bool:
    from importlib.util import find_spec

    return find_spec("numba") is not None


_TANTIVY_SYNTAX = re.compile(r"[^\w\s]+")


_TANTIVY_ANALYZER = "openbook_en"


def _register_analyzer(index):
    """Lowercase, English stopwords, Snowball stemming: the same treatment bm25s gives the text.
    Without stopwords every prompt's "the" and "of" match every passage and queries crawl.
    Returns the analyzer."""
    import tantivy

    analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )
    index.register_tokenizer(_TANTIVY_ANALYZER, analyzer)
    return analyzer


class TantivyBuilder:
    def __init__(self, directory: Path, heap_bytes: int = 512 << 20):
        import tantivy

        directory.mkdir(parents=True, exist_ok=True)
        schema = tantivy.SchemaBuilder()
        schema.add_text_field("text", stored=False, tokenizer_name=_TANTIVY_ANALYZER)
        schema.add_unsigned_field("row", stored=True, fast=True)
        self._index = tantivy.Index(schema.build(), path=str(directory))
        _register_analyzer(self._index)
        self._writer = self._index.writer(heap_size=heap_bytes)
        self._document = tantivy.Document
        self.directory = directory
        self._row = 0

    def add(self, texts: Sequence[str]) -> None:
        for text in texts:
            document = self._document()
            document.add_text("text", text)
            document.add_unsigned("row", self._row)  # a plain int would be typed i64 and rejected
            self._writer.add_document(document)
            self._row += 1

    def finish(self) -> dict[str, object]:
        self._writer.commit()
        self._writer.wait_merging_threads()
        return {
            "engine": "tantivy",
            "tokenizer": "simple+lowercase+stopwords+snowball-english",
            "similarity": "bm25 (k1=1.2, b=0.75)",
        }


class TantivyIndex:
    def __init__(self, directory: Path):
        import tantivy

        self._index = tantivy.Index.open(str(directory))
        self._analyzer = _register_analyzer(self._index)
        self._searcher = self._index.searcher()
        self.size = self._searcher.num_docs

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        for q, query in enumerate(queries):
            # query syntax in prompts is not syntax here: characters (quotes, colons, brackets) go, and
            # lowercase keeps AND/OR/NOT/IN words ("Which is NOT true?") from being operators
            words = _TANTIVY_SYNTAX.sub(" ", query).strip().lower()
            if not self._analyzer.analyze(words):  # stopwords only: no term to look for
                continue
            parsed = self._index.parse_query(words, ["text"])
            hits = self._searcher.search(parsed, k).hits
            for j, (score, address) in enumerate(hits):
                rows[q, j] = self._searcher.doc(address)["row"][0]
                scores[q, j] = score
        return rows, scores
