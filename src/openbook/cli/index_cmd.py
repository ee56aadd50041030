"""`openbook index`: corpus files -> passage store + BM25 index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openbook.cli.common import option, options_command
from openbook.corpus import FORMATS, ChunkSettings, FieldMap
from openbook.embed import EmbedderSettings
from openbook.errors import ConfigError
from openbook.index.bm25 import ENGINES
from openbook.index.build import IndexSettings, build_index
from openbook.index.dense_build import build_dense_index, check_shard_rows
from openbook.progress import console
from openbook.resources import default_knowledge_base


@dataclass(frozen=True)
class IndexOptions:
    inputs: list[Path] = option(
        [],
        "Corpus files or folders (WikiExtractor, CirrusSearch, JSONL, Parquet, CSV; .zst/.gz/.bz2). "
        "None: the embedded default knowledge base.",
        argument=True,
    )
    out: Path | None = option(
        None,
        "Index folder (created): passages, the BM25 index and manifest.json (and dense/ with --dense).",
        flags=("--out", "-o"),
        required=True,
    )
    chunk_size: int = option(512, "Passage size in characters (e.g. 256, 512, 1024).")
    overlap: int = option(0, "Characters of whole sentences repeated between passages.")
    engine: str = option("bm25s", f"BM25 engine: {', '.join(ENGINES)}.")
    format: str | None = option(None, f"Corpus format ({', '.join(FORMATS)}).", shown="detected")
    id_field: str = option("id", "Column holding the document id (tables).")
    title_field: str = option("title", "Column holding the title (tables).")
    text_field: str = option("text", "Column holding the text (tables).")
    overwrite: bool = option(False, "Replace an existing index.")
    dense: str | None = option(
        None,
        "Also embed every passage with this embedder (a name from `openbook models list`, a folder, a .gguf "
        "or a hub id). Run again to resume a stopped run.",
        shown="none: BM25 only",
    )
    dense_batch: int = option(64, "Passages per embedding batch.", minimum=1)
    query_prefix: str | None = option(
        None, "Text put before every query for the embedder.", shown="the registered model's, e.g. nomic's"
    )
    passage_prefix: str | None = option(
        None, "Text put before every passage for the embedder.", shown="the registered model's"
    )
    shard_rows: int = option(65536, "Vectors per fp16 shard of the dense index.")
    progress: bool = option(True, "Show a progress bar.", negative="--quiet")


def _index(options: IndexOptions) -> None:
    """Split a corpus into passages and build a BM25 index over them (and a dense one with --dense)."""
    assert options.out is not None  # required
    if options.engine not in ENGINES:
        raise ConfigError(f"unknown engine {options.engine!r}; choose from {', '.join(ENGINES)}")
    check_shard_rows(options.shard_rows)  # before the corpus is read, not after
    inputs_to_read = options.inputs
    if not inputs_to_read:
        inputs_to_read = default_knowledge_base()
        console.print(
            "no corpus given: indexing the embedded default knowledge base "
            "(Wikipedia vital-article summaries + exam passages, CC BY-SA 4.0)"
        )
    settings = IndexSettings(
        chunk=ChunkSettings(size=options.chunk_size, overlap=options.overlap),
        bm25_engine=options.engine,
        corpus_format=options.format,
        fields=FieldMap(id=options.id_field, title=options.title_field, text=options.text_field),
    )
    manifest = build_index(
        inputs_to_read, options.out, settings, show_progress=options.progress, overwrite=options.overwrite
    )
    if options.dense:
        info = build_dense_index(
            options.out,
            EmbedderSettings(
                options.dense,
                query_prefix=options.query_prefix,
                passage_prefix=options.passage_prefix,
                batch_size=options.dense_batch,
            ),
            shard_rows=options.shard_rows,
            show_progress=options.progress,
        )
        manifest.indexes["dense"] = {
            "model": info.model,
            "dimension": info.dimension,
            "vectors": info.passages,
            "dtype": "float16",
            "shard_rows": info.shard_rows,
        }
        manifest.seconds["dense"] = info.seconds
        manifest.save(options.out)
    console.print(
        f"index written to {options.out} ({manifest.passages:,} passages, "
        f"built in {manifest.seconds['total'] + manifest.seconds.get('dense', 0):.1f} s)"
    )


index = options_command(IndexOptions, "index", _index)
