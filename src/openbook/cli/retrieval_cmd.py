"""`openbook eval-retrieval`: recall@1/5/20 and MRR of the source passage, per retrieval pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from openbook.cli.common import ConfigOption, reports_errors, results
from openbook.config import check_at_least, resolve_options
from openbook.errors import ConfigError, OpenbookError
from openbook.evaluate.retrieval import RECALL_AT, evaluate_retrieval, grounded_questions
from openbook.exam import read_exam
from openbook.provenance import library_versions
from openbook.retrieve import Retrieval


@dataclass
class RetrievalEvalOptions:
    exam: Path | None = None
    index: Path | None = None
    pipelines: list[str] = field(default_factory=lambda: ["bm25"])
    candidates: int = 50
    dense_engine: str = "matmul"
    context_column: str = "context"
    limit: int | None = None
    grounded: bool = False
    out: Path | None = None


@reports_errors
def eval_retrieval(
    exam: Annotated[
        Path | None, typer.Argument(help="Exam whose rows carry their source passage.", show_default=False)
    ] = None,
    index: Annotated[Path | None, typer.Option("--index", "-i", help="Index folder from `openbook index`.")] = None,
    pipeline: Annotated[
        list[str] | None,
        typer.Option(
            "--pipeline",
            "-p",
            help="RETRIEVER\\[/QUERY]\\[+RERANKER] or auto, repeatable: bm25, dense, hybrid-rrf, "
            "hybrid-weighted; /joint, /per-option, /both; +edit, +embed-question, "
            "+embed-options, +embed, +cross:MODEL.",
        ),
    ] = None,
    candidates: Annotated[int | None, typer.Option(help="Passages per retriever before fusion or reranking.")] = None,
    dense_engine: Annotated[
        str | None, typer.Option(help="matmul (exact, no FAISS), faiss-flat or faiss-hnsw.")
    ] = None,
    context_column: Annotated[str | None, typer.Option(help="Exam column holding the source passage.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions that have a source passage.")] = None,
    grounded: Annotated[
        bool | None,
        typer.Option(
            "--grounded/--all-rows",
            help="Also score only the rows whose "
            "context carries their question and answer (see "
            "openbook.evaluate.retrieval).",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the table as JSON here.")] = None,
    config: ConfigOption = None,
) -> None:
    """Recall@1/5/20 and MRR of the passage each question was written from, and ms per question."""
    given = dict(locals())
    given["pipelines"] = given.pop("pipeline") or None
    options = resolve_options(RetrievalEvalOptions, "eval-retrieval", config, given)
    if options.exam is None or options.index is None:
        raise ConfigError("pass EXAM and --index DIR")
    check_at_least("--limit", options.limit, unit="questions")
    if options.out is not None and options.out.is_dir():  # found now, not after the whole evaluation
        raise ConfigError(f"--out {options.out} is a folder; name the JSON file to write")
    retrieval = Retrieval(options.index, candidates=options.candidates, dense_engine=options.dense_engine)
    specs = [retrieval.resolve(text) for text in options.pipelines]
    exam = read_exam(options.exam)
    questions = [q for q in exam if q.extra.get(options.context_column, "").strip()]
    if not questions:
        raise OpenbookError(f"{options.exam}: no question has a {options.context_column!r} column to match against")
    questions = questions[: options.limit] if options.limit is not None else questions
    grounded = frozenset(q.id for q in grounded_questions(exam, options.context_column)) if options.grounded else None
    scores = evaluate_retrieval(questions, retrieval, specs, options.context_column, grounded)
    table = Table(
        "pipeline",
        *(f"recall@{k}" for k in RECALL_AT),
        "MRR",
        "ms/question",
        title=f"source-passage retrieval, {len(questions)} questions of {options.exam.name}",
    )
    for row in scores:
        table.add_row(
            row.pipeline, *(f"{row.recall[k]:.3f}" for k in RECALL_AT), f"{row.mrr:.3f}", f"{row.ms_per_question:.1f}"
        )
    results.print(table)
    if options.out:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(
            json.dumps(
                {
                    "exam": str(options.exam),
                    "index": str(options.index),
                    "candidates": options.candidates,
                    "dense_engine": options.dense_engine,
                    "results": [row.as_dict() for row in scores],
                    "versions": library_versions(),
                },
                indent=2,
            )
            + "\n"
        )
