"""`openbook eval-retrieval`: recall@1/5/20 and MRR of the source passage, per retrieval pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from openbook.cli.common import options_command, results
from openbook.config import option
from openbook.errors import OpenbookError
from openbook.evaluate.retrieval import RECALL_AT, RetrievalScores, evaluate_retrieval, grounded_questions
from openbook.exam import read_exam
from openbook.files import write_atomically
from openbook.provenance import library_versions
from openbook.retrieve import AUTO, Retrieval

RETRIEVAL_FILE = "retrieval.json"  # what --out holds


@dataclass(frozen=True)
class RetrievalEvalOptions:
    exam: Path | None = option(None, "Exam whose rows carry their source passage.", argument=True, required=True)
    index: Path | None = option(None, "Index folder from `openbook index`.", flags=("--index", "-i"), required=True)
    retrieval: list[str] = option(
        [AUTO],
        "RETRIEVER\\[/QUERY]\\[+RERANKER] or auto (hybrid-rrf+embed where the index has a dense part, else "
        "bm25); repeat to compare: bm25, dense, hybrid-rrf, hybrid-weighted; /joint, /per-option, /both; "
        "+edit, +embed-question, +embed-options, +embed, +cross:MODEL.",
    )
    candidates: int = option(50, "Passages per retriever before fusion or reranking.", minimum=1)
    dense_engine: str = option("matmul", "matmul (exact, no FAISS), faiss-flat or faiss-hnsw.")
    context_column: str = option("context", "Exam column holding the source passage.")
    limit: int | None = option(
        None, "Only the first N questions that have a source passage.", minimum=1, unit="questions", shown="all"
    )
    grounded: bool = option(
        False,
        "Also score only the rows whose context carries their question and answer (see openbook.evaluate.retrieval).",
        negative="--all-rows",
    )
    out: Path | None = option(
        None,
        f"Folder (created): {RETRIEVAL_FILE}, the table with the exam, index and settings it was measured on.",
        flags=("--out", "-o"),
        shown="none: the table only",
    )


def scores_table(scores: list[RetrievalScores], title: str) -> Table:
    """One row per pipeline; short headers keep every column whole in an 80-column terminal."""
    table = Table(
        title=title,
        caption="R@k: share of questions whose source passage is in the top k; MRR: mean reciprocal rank; "
        "ms/q: milliseconds per question",
    )
    table.add_column("retrieval", overflow="fold")  # a long pipeline folds; the numbers never do
    for header in (*(f"R@{k}" for k in RECALL_AT), "MRR", "ms/q"):
        table.add_column(header, justify="right", no_wrap=True)
    for row in scores:
        table.add_row(
            row.pipeline, *(f"{row.recall[k]:.3f}" for k in RECALL_AT), f"{row.mrr:.3f}", f"{row.ms_per_question:.1f}"
        )
    return table


def _eval_retrieval(options: RetrievalEvalOptions) -> None:
    """Recall@1/5/20 and MRR of the passage each question was written from, and ms per question."""
    assert options.exam is not None and options.index is not None  # required
    retrieval = Retrieval(options.index, candidates=options.candidates, dense_engine=options.dense_engine)
    specs = [retrieval.resolve(text) for text in options.retrieval]
    exam = read_exam(options.exam)
    questions = [q for q in exam if q.extra.get(options.context_column, "").strip()]
    if not questions:
        raise OpenbookError(f"{options.exam}: no question has a {options.context_column!r} column to match against")
    questions = questions[: options.limit] if options.limit is not None else questions
    grounded = frozenset(q.id for q in grounded_questions(exam, options.context_column)) if options.grounded else None
    scores = evaluate_retrieval(questions, retrieval, specs, options.context_column, grounded)
    results.print(scores_table(scores, f"source-passage retrieval, {len(questions)} questions of {options.exam.name}"))
    if options.out is not None:
        options.out.mkdir(parents=True, exist_ok=True)
        report = {
            "exam": str(options.exam),
            "index": str(options.index),
            "retrieval": options.retrieval,
            "candidates": options.candidates,
            "dense_engine": options.dense_engine,
            "results": [row.as_dict() for row in scores],
            "versions": library_versions(),
        }
        write_atomically(options.out / RETRIEVAL_FILE, json.dumps(report, indent=2) + "\n")
        results.print(f"wrote {options.out / RETRIEVAL_FILE}", highlight=False)


eval_retrieval = options_command(RetrievalEvalOptions, "eval-retrieval", _eval_retrieval)
