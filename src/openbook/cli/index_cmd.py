"""`openbook index`: corpus files -> passage store + BM25 index; `openbook index info`: what an index holds;
`openbook verify-index`: is an index whole."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from openbook.cli.common import options_command, reports_errors, results
from openbook.config import option
from openbook.corpus import FORMATS, ChunkSettings, FieldMap
from openbook.embed import EmbedderSettings
from openbook.errors import ConfigError, OpenbookError
from openbook.index.bm25 import ENGINES
from openbook.index.build import IndexSettings, build_index
from openbook.index.cluster import ClusterSettings
from openbook.index.dense_build import DenseSettings, check_shard_rows
from openbook.index.info import index_info
from openbook.index.verify import verify_index
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
    overwrite: bool = option(
        False,
        "Replace an index of other inputs or settings (it serves until the new one is complete), or discard "
        "a stopped build of others.",
    )
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
    ray: str | None = option(
        None,
        "Build on a Ray cluster: `--ray` alone starts one on this machine, `--ray HOST:PORT` (or `auto`) joins a "
        "running one, whose nodes must all see --out (a shared file system). Inputs are chunked a file per task, "
        "BM25 (bm25s) built in shards weighted by the whole corpus, passages embedded by a pool of actors (a GPU "
        "each where the cluster has GPUs); the index is the one a single process builds. tantivy is built on "
        "this machine (it streams to disk: the engine for corpora whose postings outgrow one machine's memory).",
        shown="one process",
    )
    unit_documents: int = option(
        10_000, "With --ray: documents per work unit (a stopped build resumes at one).", minimum=1
    )
    bm25_shard_rows: int = option(
        1_000_000, "With --ray: passages per BM25 shard (each built in one worker's memory).", minimum=1
    )
    embed_workers: int | None = option(
        None, "With --ray: embedding actors.", shown="one per GPU of the cluster, else per CPU", minimum=1
    )
    progress: bool = option(True, "Show a progress bar.", negative="--quiet")


def _index(options: IndexOptions) -> None:
    """Split a corpus into passages and build a BM25 index over them (and a dense one with --dense).

    The index is built in a folder beside --out and replaces it only when complete, so an index there
    serves until then; one builder per folder at a time. Stopped (Ctrl-C, kill, a crash), the same
    command resumes where it stopped. Run again on a whole index of the same inputs and settings, it
    keeps it (adding a dense part where asked for); a damaged one it rebuilds. Check every byte of an
    index with `openbook verify-index DIR`."""
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
    dense = None
    if options.dense:
        embedder = EmbedderSettings(
            options.dense,
            query_prefix=options.query_prefix,
            passage_prefix=options.passage_prefix,
            batch_size=options.dense_batch,
        )
        dense = DenseSettings(embedder, shard_rows=options.shard_rows)
    cluster = None
    if options.ray is not None:
        cluster = ClusterSettings(
            options.ray, options.unit_documents, options.bm25_shard_rows, embed_workers=options.embed_workers
        )
    manifest = build_index(
        inputs_to_read,
        options.out,
        settings,
        show_progress=options.progress,
        overwrite=options.overwrite,
        dense=dense,
        cluster=cluster,
    )
    console.print(
        f"index written to {options.out} ({manifest.passages:,} passages, "
        f"built in {manifest.seconds['total'] + manifest.seconds.get('dense', 0):.1f} s)"
    )


index = options_command(IndexOptions, "index", _index)


@reports_errors
def verify(directory: Annotated[Path, typer.Argument(help="Index folder built by `openbook index`.")]) -> None:
    """Check that every part of an index is whole and of this index: every byte of the passage store,
    the BM25 files and the dense shards against the sizes and checksums its manifest records (each
    open checks only sizes and build ids). Exit 2, naming each damaged file and the command that
    rebuilds the index, if one is not."""
    verification = verify_index(directory)
    manifest = verification.manifest
    results.print(
        f"{directory}: build {manifest.build or '(not recorded)'}, {manifest.passages:,} passages "
        f"from {len(manifest.inputs)} input(s)",
        highlight=False,
        soft_wrap=True,  # a path is never cut across lines
    )
    for part, size in verification.checked.items():
        results.print(f"  ok  {part}  {size:,} bytes  sha256 as recorded", highlight=False, soft_wrap=True)
    for problem in verification.problems:
        results.print(f"  damaged  {problem}", highlight=False, soft_wrap=True)
    if verification.problems:
        raise OpenbookError(
            f"{directory} is damaged ({len(verification.problems)} problem(s) above); {verification.repair(directory)}"
        )
    if not manifest.parts:
        results.print(
            "built before openbook recorded the parts of an index: their sizes and checksums cannot be checked "
            "(the store was read whole, the other parts checked as far as they go); rebuild it to record them",
            highlight=False,
        )
    else:
        total = sum(verification.checked.values())
        results.print(f"whole: {len(verification.checked)} parts, {total:,} bytes, each as recorded", highlight=False)


@reports_errors
def info(
    directory: Annotated[Path, typer.Argument(help="Index folder built by `openbook index`.")],
    as_json: Annotated[bool, typer.Option("--json", help="The manifest and sizes as JSON, for scripts.")] = False,
) -> None:
    """What an index holds, in words: its inputs, passages, search engines, embedder and the size of
    each part on disk (from its manifest; `openbook verify-index` checks the bytes)."""
    described = index_info(directory)
    if as_json:
        results.print_json(json.dumps(described.as_dict()))
        return
    for line in described.lines():
        results.print(line, highlight=False, soft_wrap=True)
