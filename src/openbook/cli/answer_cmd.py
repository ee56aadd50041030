"""`openbook answer` and `openbook eval`: plan, retrieve, read, rank; write the submission and details.

Their options are derived from the options registry (`openbook.answer.options.AnswerOptions`): one
flag, help text, panel and shown default per field, never listed here again."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from openbook.answer import AnswerOptions, make_plan
from openbook.cli.common import options_command, results
from openbook.errors import ConfigError, OpenbookError
from openbook.evaluate.run import run_exam
from openbook.exam import read_exam
from openbook.progress import console

DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the plan (stages, readers, context, budget, re-read rule) and stop."),
]


DRY_RUN = inspect.Parameter("dry_run", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DryRunOption)


def _run(command: str, options: AnswerOptions, dry_run: bool, need_answers: bool) -> dict[str, Any]:
    plan = make_plan(options)  # every mistake in the options is reported here, before a model loads
    if dry_run:
        results.print(plan.describe(), highlight=False, soft_wrap=True)
        return {}
    if options.exam is None:
        raise ConfigError(f"no exam: pass EXAM (or `exam` in the [answer] table) to `openbook {command}`")
    if options.out is None:
        raise ConfigError("no output folder: pass --out DIR (or `out` in the [answer] table)")
    questions = read_exam(options.exam)
    if need_answers and not any(q.answer for q in questions[: options.limit]):
        within = f" in its first {options.limit} questions" if options.limit else ""
        raise OpenbookError(f"{options.exam}: no answers to evaluate against{within}; use `openbook answer`")
    outcome = run_exam(options, plan, questions)
    run = outcome.run
    if outcome.resumed:
        console.print(
            f"resumed: {outcome.answered_before} questions kept from earlier runs in {options.out}"
            + (
                f", {len(outcome.earlier.first_pass)} first-pass answers taken up again"
                if outcome.earlier.first_pass
                else ""
            )
            + f"; {outcome.earlier.seconds:.0f} s spent before"
        )
    if run.failure is not None:
        saved = f"the {len(run.results)} questions answered before it are saved in {options.out}"
        if run.error is not None and not isinstance(run.error, OpenbookError):
            console.print(f"[bold red]stopped by an internal error[/] at {run.failure}; {saved}")
            raise run.error  # a bug: its traceback, not a user's mistake
        raise OpenbookError(f"stopped at {run.failure}; {saved}")
    console.print(
        f"wrote {options.out}/submission.csv and predictions.jsonl ({len(run.results)} questions "
        f"answered now, {outcome.answered_before} before; {run.seconds.per_question:.2f} s/question"
        f"{' over the whole run' if outcome.resumed else ''})"
    )
    return outcome.metrics


def _command(name: str, need_answers: bool, report: Callable[[dict[str, Any]], None], doc: str) -> Callable[..., None]:
    """A command with the registry's options and --dry-run that runs the exam and hands the metrics to `report`."""

    def run(options: AnswerOptions, dry_run: bool) -> None:
        metrics = _run(name, options, dry_run, need_answers)
        if metrics:
            report(metrics)

    run.__doc__ = doc
    return options_command(AnswerOptions, "answer", run, switches=[DRY_RUN], name=name)


def _print_scores(metrics: dict[str, Any]) -> None:
    results.print(
        f"MAP@3 {metrics['map@3']:.4f}  accuracy {metrics['accuracy']:.4f}  ({metrics['count']} questions)",
        highlight=False,
    )


def metrics_table(metrics: dict[str, Any]) -> Table:
    """A run's scores and timings, one per row: readable in an 80-column terminal."""
    seconds = metrics["seconds"]
    table = Table("measure", "value", title="openbook eval")
    for measure, value in (
        ("exam", str(metrics["settings"]["exam"])),
        ("questions", str(metrics["count"])),
        ("MAP@3", f"{metrics['map@3']:.4f}"),
        ("accuracy", f"{metrics['accuracy']:.4f}"),
        ("ECE (confidence)", f"{metrics['confidence']['ece']:.3f}"),
        ("seconds per question", f"{seconds['per_question']:.2f}"),
        ("model seconds", f"{seconds['model']:.1f}"),
        ("overhead", f"{seconds['overhead_fraction']:.1%}"),
    ):
        table.add_row(measure, value)
    return table


def _print_table(metrics: dict[str, Any]) -> None:
    results.print(metrics_table(metrics))


answer = _command(
    "answer",
    False,
    _print_scores,
    "Answer an exam: retrieve context, read it with the model, write submission.csv and details.",
)
evaluate = _command(
    "eval", True, _print_table, "Answer an exam that has answers and print MAP@3, accuracy and timings as a table."
)
