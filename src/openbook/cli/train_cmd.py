"""`openbook train …`: fine-tune the models openbook trains itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openbook.cli.common import reports_errors, results
from openbook.errors import OpenbookError
from openbook.evaluate.retrieval import grounded_questions
from openbook.exam import read_exam
from openbook.train.cross_encoder import CrossEncoderTraining, train_cross_encoder

app = typer.Typer(help="Fine-tune models: a cross-encoder reranker.", no_args_is_help=True)
DEFAULTS = CrossEncoderTraining()


@app.command("cross-encoder")
@reports_errors
def cross_encoder(
    exam: Annotated[Path, typer.Argument(help="Exam whose rows carry their source passage (a `context` column).")],
    index: Annotated[Path, typer.Option("--index", "-i", help="Index to draw hard negatives from (BM25).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the trained CrossEncoder.")],
    base: Annotated[str, typer.Option(help="Encoder to start from: embedder name, folder or hub id.")] = DEFAULTS.base,
    epochs: Annotated[int, typer.Option(help="Passes over the pairs.")] = DEFAULTS.epochs,
    negatives: Annotated[int, typer.Option(help="Hard negatives per question.")] = DEFAULTS.negatives,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = DEFAULTS.batch_size,
    seed: Annotated[int, typer.Option(help="Seed for sampling, shuffling and the new head.")] = DEFAULTS.seed,
    progress: Annotated[bool, typer.Option("--progress/--quiet", help="Show a progress bar.")] = True,
) -> None:
    """Train a (question, passage) cross-encoder on an exam's source passages; rerank with +cross:OUT."""
    questions = grounded_questions(read_exam(exam))  # positives must really be the sources
    if not any(q.extra.get("context", "").strip() for q in questions):
        raise OpenbookError(f"{exam}: no row whose `context` column carries its question to learn from")
    settings = CrossEncoderTraining(base=base, epochs=epochs, negatives=negatives, batch_size=batch_size, seed=seed)
    summary = train_cross_encoder(questions, index, out, settings, show_progress=progress)
    results.print(f"{out}: {summary['pairs']} pairs, {summary['seconds']} s, final loss {summary['final_loss']}",
                  highlight=False)
