"""Entry point of the `openbook` command."""

from __future__ import annotations

from typing import Annotated

import typer

from openbook import __version__
from openbook.cli import (
    answer_cmd,
    ask_cmd,
    ensemble_cmd,
    exam_cmd,
    index_cmd,
    models_cmd,
    retrieval_cmd,
    review_cmd,
    search_cmd,
    serve_cmd,
    train_cmd,
)

app = typer.Typer(
    name="openbook",
    help="Answer multiple-choice science exams from Wikipedia: index a corpus, retrieve, read, rank.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"openbook {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """openbook: retrieval + language-model readers for multiple-choice exams."""


app.command("index")(index_cmd.index)
app.command("verify-index")(index_cmd.verify)
app.command("search")(search_cmd.search)
app.command("answer")(answer_cmd.answer)
app.command("eval")(answer_cmd.evaluate)
app.command("ask")(ask_cmd.ask)
app.command("serve")(serve_cmd.serve)
app.command("eval-retrieval")(retrieval_cmd.eval_retrieval)
app.command("check")(exam_cmd.check)
app.command("score")(exam_cmd.score)
app.command("show")(review_cmd.show)
app.command("compare")(review_cmd.compare_runs)
app.command("report")(review_cmd.report)
app.add_typer(models_cmd.app, name="models")
app.add_typer(train_cmd.app, name="train")
app.add_typer(ensemble_cmd.app, name="ensemble")
