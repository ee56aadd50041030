"""Entry point of the `openbook` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from openbook import __version__
from openbook.cli import (
    answer_cmd,
    ask_cmd,
    ensemble_cmd,
    exam_cmd,
    generate_cmd,
    index_cmd,
    models_cmd,
    retrieval_cmd,
    review_cmd,
    search_cmd,
    serve_cmd,
    train_cmd,
)


class OpenbookCommands(TyperGroup):
    """The commands; `--ray` with no address, to a command that runs on a cluster, means a new local one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click's Context
        return super().parse_args(ctx, bare_ray_means_local(args) if args[:1] in (["answer"], ["eval"]) else args)


app = typer.Typer(
    cls=OpenbookCommands,
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


class IndexCommands(TyperGroup):
    """`openbook index INPUTS… --out DIR` builds (the `build` subcommand is implied, so a corpus named
    like a subcommand is given as ./info); `openbook index info DIR` describes an index."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click's Context
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["build", *args]
        return super().parse_args(ctx, bare_ray_means_local(args))


def bare_ray_means_local(args: list[str]) -> list[str]:
    """`--ray` with no address (last, or before another option or an input that exists) is `--ray local`."""
    found = [i for i, arg in enumerate(args) if arg == "--ray"]
    for i in reversed(found):
        if i + 1 == len(args) or args[i + 1].startswith("-") or Path(args[i + 1]).exists():
            args = [*args[: i + 1], "local", *args[i + 1 :]]
    return args


index_app = typer.Typer(
    cls=IndexCommands,
    help="Build an index (`openbook index [CORPUS...] --out DIR`, the `build` subcommand) or describe one "
    "(`openbook index info DIR`).",
    no_args_is_help=True,
)
index_app.command("build")(index_cmd.index)
index_app.command("info")(index_cmd.info)
app.add_typer(index_app, name="index")
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
app.command("generate")(generate_cmd.generate_command)
app.add_typer(models_cmd.app, name="models")
app.add_typer(train_cmd.app, name="train")
app.add_typer(ensemble_cmd.app, name="ensemble")
