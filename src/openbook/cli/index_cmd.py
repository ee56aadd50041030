"""`openbook index`: corpus files -> passage store + BM25 index."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from openbook.cli.common import ConfigOption, reports_errors
from openbook.config import resolve_options
from openbook.corpus import FORMATS, ChunkSettings, FieldMap
from openbook.embed import EmbedderSettings
from openbook.errors import ConfigError
from openbook.index.bm25 import ENGINES
from openbook.index.build import IndexSettings, build_index
from openbook.index.dense import build_dense_index, check_shard_rows
from openbook.progress import console
from openbook.resources import default_knowledge_base


@dataclass
class IndexOptions:
    inputs: list[Path] = field(default_factory=list)
    out: Path | None = None
    chunk_size: int = 512
    overlap: int = 0
    engine: str = "bm25s"
    format: str | None = None
    id_field: str = "id"
    title_field: str = "title"
    text_field: str = "text"
    overwrite: bool = False
    dense: str | None = None  # embedder for a dense index (none: BM25 only)
    dense_batch: int = 64
    query_prefix: str | None = None  # None: the registered embedder's own (nomic: "search_query: ")
    passage_prefix: str | None = None
    shard_rows: int = 65536
    progress: bool = True


@reports_errors
def index(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Corpus files or folders (WikiExtractor, CirrusSearch, JSONL, Parquet, CSV; .zst/.gz/.bz2). "
            "None: the embedded default knowledge base.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Index folder to create.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Passage size in characters (e.g. 256, 512, 1024).")] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Characters of whole sentences repeated between passages.")
    ] = None,
    engine: Annotated[str | None, typer.Option(help=f"BM25 engine: {', '.join(ENGINES)}.")] = None,
    format: Annotated[
        str | None, typer.Option(help=f"Corpus format ({', '.join(FORMATS)}); default: detected.")
    ] = None,
    id_field: Annotated[str | None, typer.Option(help="Column holding the document id (tables).")] = None,
    title_field: Annotated[str | None, typer.Option(help="Column holding the title (tables).")] = None,
    text_field: Annotated[str | None, typer.Option(help="Column holding the text (tables).")] = None,
    overwrite: Annotated[
        bool | None, typer.Option("--overwrite/--no-overwrite", help="Replace an existing index.")
    ] = None,
    dense: Annotated[
        str | None,
        typer.Option(
            help="Also embed every passage with this embedder (a name from "
            "`openbook models list`, a folder, a .gguf or a hub id). "
            "Run again to resume a stopped run."
        ),
    ] = None,
    dense_batch: Annotated[int | None, typer.Option(help="Passages per embedding batch.")] = None,
    query_prefix: Annotated[
        str | None,
        typer.Option(
            help="Text put before every query for the embedder (default: the registered model's, e.g. nomic's)."
        ),
    ] = None,
    passage_prefix: Annotated[str | None, typer.Option(help="Text put before every passage for the embedder.")] = None,
    shard_rows: Annotated[int | None, typer.Option(help="Vectors per fp16 shard of the dense index.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--quiet", help="Show a progress bar.")] = None,
    config: ConfigOption = None,
) -> None:
    """Split a corpus into passages and build a BM25 index over them (and a dense one with --dense)."""
    given = dict(locals())
    given["inputs"] = inputs or None
    options = resolve_options(IndexOptions, "index", config, given)
    if options.out is None:
        raise ConfigError("no output folder: pass --out DIR (or `out` in the [index] table)")
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
