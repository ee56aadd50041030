"""BM25 over the passage store, with two interchangeable engines.

- `bm25s`: sparse-matrix BM25 (Lucene variant) in numpy, Snowball stemming and English stopwords;
  the whole token list is held while building, the saved matrix is memory-mapped for search.
- `tantivy`: the Rust search library (BM25 with the same stopwords and stemming), built streaming on disk.

Both store a passage's row number, so hits resolve through the passage store. The choice between
them is measured in `bench/index_bm25.py`.

A bm25s index may be split into shards of consecutive rows (`bm25/shard-00000/`, …), each built on
its own (a cluster's workers, `index/cluster.py`) but weighted with the statistics of the whole
corpus (`CorpusStats`: passages, tokens, each word's document frequency), so every passage scores
what it scores in one unsharded index, and the merged top-k of the shards is the unsharded top-k.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
K1, B = 1.2, 0.75
BM25S_PARAMS = {
    "engine": "bm25s",
    "k1": K1,
    "b": B,
    "method": "lucene",
    "stemmer": "snowball-english",
    "stopwords": "bm25s-en",
}  # what a bm25s index records of itself


def shard_folder(number: int) -> str:
    return f"shard-{number:05d}"


@dataclass(frozen=True)
class CorpusStats:
    """What a passage's BM25 weights depend on beyond the passage: how many passages, how many
    tokens in all (the average length), and in how many passages each word (stem) occurs."""

    passages: int
    tokens: int
    document_frequencies: Mapping[str, int]

    @classmethod
    def of_texts(cls, texts: Iterable[str]) -> CorpusStats:
        tokenizer = _english_tokenizer()
        frequencies: Counter[int] = Counter()
        passages = tokens = 0
        for token_ids in tokenizer.streaming_tokenize(list(texts)):
            passages += 1
            tokens += len(token_ids)
            frequencies.update(set(token_ids))
        words = {token_id: word for word, token_id in tokenizer.get_vocab_dict().items()}
        return cls(passages, tokens, {words[token_id]: count for token_id, count in frequencies.items()})

    @classmethod
    def merged(cls, parts: Sequence[CorpusStats]) -> CorpusStats:
        frequencies: Counter[str] = Counter()
        for part in parts:
            frequencies.update(part.document_frequencies)
        return cls(sum(p.passages for p in parts), sum(p.tokens for p in parts), dict(frequencies))

    def average_length(self) -> np.float64:
        """As bm25s works it out (a float64 mean of integer lengths: the exact sum over the count)."""
        return np.float64(self.tokens) / self.passages


class SparseIndexBuilder(Protocol):
    def add(self, texts: Sequence[str]) -> None: ...
    def finish(self) -> dict[str, object]: ...


class SparseIndex(Protocol):
    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores, each of shape (len(queries), k'), best first; k' = min(k, passages).
        A row of -1 marks a slot with no matching passage."""
        ...


def new_builder(engine: str, folder: Path, corpus: CorpusStats | None = None) -> SparseIndexBuilder:
    """A builder writing the BM25 index into `folder` (created); `finish` returns its parameters,
    which `save_params` records beside it. `corpus`: a shard's, the whole corpus's statistics."""
    if engine == "bm25s":
        return Bm25sBuilder(folder, corpus=corpus)
    if corpus is not None:
        raise ConfigError("only the bm25s engine builds shards; tantivy builds one index on disk")
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
        documents = 0
        for shard in _shard_folders(folder, params):
            counts = read_json(
                shard / "params.index.json",
                "a bm25s index description",
                f"rebuild it with `{rebuild_command(directory, manifest)}`",
            )
            documents += int(counts.get("num_docs", -1))
        check_count(directory, manifest, folder, "documents", documents)
    return params


def _shard_rows(params: Mapping[str, object]) -> list[int] | None:
    """The passages of each shard of a sharded BM25 part (None: one index)."""
    shards = params.get("shards")
    return [int(rows) for rows in shards] if isinstance(shards, list) else None


def _shard_folders(folder: Path, params: Mapping[str, object]) -> list[Path]:
    """The bm25s index folders of a BM25 part: its shards in row order, or the part itself."""
    rows = _shard_rows(params)
    return [folder / shard_folder(n) for n in range(len(rows))] if rows is not None else [folder]


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
        index: Bm25sIndex | TantivyIndex | ShardedBm25Index
        if params.get("engine") != "bm25s":
            index = TantivyIndex(folder)
        elif "shards" in params:
            total = sum(_shard_rows(params) or [])
            index = ShardedBm25Index([Bm25sIndex(s, index_passages=total) for s in _shard_folders(folder, params)])
        else:
            index = Bm25sIndex(folder)
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
    def __init__(self, directory: Path, corpus: CorpusStats | None = None):
        self.directory = directory
        self.corpus = corpus
        self._tokenizer = _english_tokenizer()
        self._token_ids: list[list[int]] = []

    def add(self, texts: Sequence[str]) -> None:
        self._token_ids.extend(self._tokenizer.streaming_tokenize(texts))

    def finish(self) -> dict[str, object]:
        bm25s = import_bm25s()

        vocabulary = self._tokenizer.get_vocab_dict()
        engine = (
            bm25s.BM25(k1=K1, b=B, method="lucene")
            if self.corpus is None
            else _corpus_wide_bm25(self.corpus, vocabulary)
        )
        engine.index((self._token_ids, vocabulary), show_progress=False)
        self._token_ids = []
        self.directory.mkdir(parents=True, exist_ok=True)
        engine.save(str(self.directory))
        self._tokenizer.save_vocab(str(self.directory))
        self._tokenizer.save_stopwords(str(self.directory))
        return dict(BM25S_PARAMS)


NUMBA_FROM_PASSAGES = 100_000


class Bm25sIndex:
    """Search with bm25s. Over large indexes the numba scorer is ~30x faster than numpy
    (956 vs 31 queries/s on 960K passages), but compiling it costs ~6 s per process, so small
    indexes, where numpy is already fast, keep numpy. `index_passages`: the whole index's where this
    is one of its shards (a small last shard of a large index is scored with numba too: compiled
    once for all shards, and numpy's cost per query does not shrink with the shard)."""

    def __init__(
        self, directory: Path, numba_from_passages: int = NUMBA_FROM_PASSAGES, index_passages: int | None = None
    ):
        bm25s = import_bm25s()

        num_docs = json.loads((directory / "params.index.json").read_text())["num_docs"]
        large = (index_passages or num_docs) >= numba_from_passages
        backend = "numba" if large and _numba_available() else "numpy"
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


def _corpus_wide_bm25(corpus: CorpusStats, vocabulary: Mapping[str, int]):
    """A bm25s engine for one shard of a corpus: its passages weighted by `corpus`'s passage count,
    average length and document frequencies, not the shard's own. bm25s invites this: its
    `build_index_from_ids` is the step to override to build an index otherwise. It runs bm25s's own
    scoring functions (so the weights are the unsharded index's, bit for bit), with the shard's own
    frequencies only where they size the arrays."""
    bm25s = import_bm25s()
    from bm25s import scoring

    words = {token_id: word for word, token_id in vocabulary.items()}

    class CorpusWideBM25(bm25s.BM25):  # type: ignore[name-defined]  # bm25s, imported lazily
        def build_index_from_ids(self, unique_token_ids, corpus_token_ids, show_progress=True, leave_progress=False):
            self.nonoccurrence_array = None  # the lucene method has none
            in_shard = scoring._calculate_doc_freqs(corpus_token_ids, unique_token_ids, show_progress=False)
            idf = np.zeros(len(in_shard), dtype=self.dtype)
            score_idf = scoring._select_idf_scorer(self.idf_method)
            for token_id, count in in_shard.items():
                if count:
                    idf[token_id] = score_idf(corpus.document_frequencies[words[token_id]], N=corpus.passages)
            data, rows, columns = scoring._build_scores_and_indices_for_matrix(
                corpus_token_ids=corpus_token_ids,
                idf_array=idf,
                avg_doc_len=corpus.average_length(),
                doc_frequencies=in_shard,
                k1=self.k1,
                b=self.b,
                delta=self.delta,
                show_progress=False,
                dtype=self.dtype,
                int_dtype=self.int_dtype,
                method=self.method,
                nonoccurrence_array=None,
            )
            shape = (len(corpus_token_ids), len(unique_token_ids))
            data, indices, indptr = self._np_csc(data=data, rows=rows, cols=columns, shape=shape)
            return {"data": data.astype(self.dtype), "indices": indices, "indptr": indptr, "num_docs": shape[0]}

    return CorpusWideBM25(k1=K1, b=B, method="lucene")


class ShardedBm25Index:
    """bm25s shards of consecutive rows, searched each for the top k and merged: best score first,
    equal scores by row (a shard's passages score as in the unsharded index, `CorpusStats`)."""

    def __init__(self, shards: Sequence[Bm25sIndex]):
        self._shards = list(shards)
        self._first_rows = np.cumsum([0] + [shard.size for shard in self._shards])[:-1]
        self.size = sum(shard.size for shard in self._shards)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        found = [shard.search(queries, k) for shard in self._shards]
        rows = np.concatenate([np.where(r >= 0, r + first, -1) for (r, _), first in zip(found, self._first_rows)], 1)
        scores = np.concatenate([s for _, s in found], axis=1)
        # best first, equal scores by row, empty slots (-1) last
        order = np.lexsort((np.where(rows >= 0, rows, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
        return np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)


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
            "similarity": "bm25 (k1=1.2, b=0.75)",  # tantivy's own, fixed
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
